// swift-tools-version:5.9
// The Erth Sync Swift package, copied by scripts/build-apple.sh next to the
// XCFramework it builds (ErthSyncFFI.xcframework: static liberth_mobile.a
// per platform, the C headers and module map), the generated Swift bindings
// (Sources/ErthSync/ErthSync.swift, erth_core.swift) and the hand-written
// Swift of bindings-mobile/swift/.
import PackageDescription

let package = Package(
    name: "ErthSync",
    platforms: [.iOS(.v13), .macOS(.v11)],
    products: [
        .library(name: "ErthSync", targets: ["ErthSync"]),
    ],
    targets: [
        .binaryTarget(name: "ErthSyncFFI", path: "ErthSyncFFI.xcframework"),
        .target(name: "ErthSync", dependencies: ["ErthSyncFFI"], path: "Sources/ErthSync"),
    ]
)
