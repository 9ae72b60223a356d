// swift-tools-version:5.9
// The Swift face's benchmark (erth-bench's `faces` section), built by
// `cargo xtask bench` as the swift suite builds its tests: it copies this
// directory into the chroot and adds what the build generates:
//   Sources/ErthSync/*.swift                         (uniffi-bindgen, and the hand-written ones)
//   Sources/ErthSyncFFI/*.h, module.modulemap        (uniffi-bindgen)
//   lib/liberth_mobile.so                            (the wheel's library)
import PackageDescription

let libDir = "\(Context.packageDirectory)/lib"

let package = Package(
    name: "FaceBench",
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
        .executableTarget(name: "FaceBench", dependencies: ["ErthSync"], path: "Sources/FaceBench"),
    ]
)
