// swift-tools-version:5.9
// XCTest package for the generated Swift bindings (module ErthSync), run on
// Linux by `cargo xtask test swift`. The suite copies this directory into its
// work dir and adds what the build generates, so none of it is edited by hand:
//   Sources/ErthSync/ErthSync.swift                 (uniffi-bindgen, Swift)
//   Sources/ErthSyncFFI/ErthSyncFFI.h, module.modulemap  (uniffi-bindgen)
//   lib/liberth_mobile.so                            (cargo build -p erth-mobile)
import PackageDescription

let libDir = "\(Context.packageDirectory)/lib"

let package = Package(
    name: "ErthSyncTests",
    targets: [
        .systemLibrary(name: "ErthSyncFFI", path: "Sources/ErthSyncFFI"),
        .target(
            name: "ErthSync",
            dependencies: ["ErthSyncFFI"],
            path: "Sources/ErthSync",
            linkerSettings: [
                .linkedLibrary("erth_mobile"),
                .unsafeFlags(["-L\(libDir)", "-Xlinker", "-rpath", "-Xlinker", libDir]),
            ]
        ),
        .testTarget(name: "ErthSyncTests", dependencies: ["ErthSync"], path: "Tests/ErthSyncTests"),
    ]
)
