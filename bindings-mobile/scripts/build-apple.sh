#!/usr/bin/env bash
# Builds the Erth Sync Swift package for iOS, the iOS simulator and macOS:
# static libraries per platform (lipo'd per slice), an XCFramework
# ErthSyncFFI.xcframework made by `xcodebuild -create-xcframework` (both
# generated headers, erth-mobile's and the core's, under one module map), the
# generated Swift bindings (module ErthSync: ErthSync.swift and
# erth_core.swift) with the hand-written Swift of bindings-mobile/swift/
# (ErthDb.watchStream), and a Package.swift with a binaryTarget, ready to add
# to Xcode as a local package.
#
# Run on a Mac with Xcode, from anywhere inside the repository:
#   bindings-mobile/scripts/build-apple.sh [OUT_DIR]   (default: target/apple/ErthSync)
#
# Needs: rustup, Xcode (xcodebuild, lipo). Set ERTH_APPLE_SKIP_MACOS=1 to
# leave the macOS slice out.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$root/target/apple/ErthSync}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

die() { echo "build-apple: $*" >&2; exit 1; }
[[ "$(uname -s)" == Darwin ]] || die "needs macOS with Xcode (xcodebuild, lipo)"
command -v xcodebuild >/dev/null || die "xcodebuild not found: install Xcode and run xcode-select -s"
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup"

ios=aarch64-apple-ios
sims=(aarch64-apple-ios-sim x86_64-apple-ios)
macs=(aarch64-apple-darwin x86_64-apple-darwin)
targets=("$ios" "${sims[@]}")
[[ "${ERTH_APPLE_SKIP_MACOS:-0}" == 1 ]] || targets+=("${macs[@]}")

cd "$root"
rustup target add "${targets[@]}"
for t in "${targets[@]}"; do
  cargo build -p erth-mobile --release --target "$t"
done

# The Swift bindings, generated from the host build (same metadata on every target).
cargo build -p erth-mobile --release
cargo build -p uniffi-bindgen --release
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT
"$target_dir/release/uniffi-bindgen" generate --library "$target_dir/release/liberth_mobile.dylib" \
  --language swift --out-dir "$gen" --no-format

# Headers of the C module ErthSyncFFI: every generated header, in one module
# map (the same one `cargo xtask test swift` writes; the generator writes
# none, see the two uniffi.toml files).
headers="$gen/headers"
mkdir -p "$headers"
cp "$gen"/*.h "$headers/"
{
  echo "module ErthSyncFFI {"
  for h in "$headers"/*.h; do echo "    header \"$(basename "$h")\""; done
  echo "    export *"
  echo "}"
} >"$headers/module.modulemap"

lib() { echo "$target_dir/$1/release/liberth_mobile.a"; }
mkdir -p "$gen/sim" "$gen/macos"
lipo -create "$(lib "${sims[0]}")" "$(lib "${sims[1]}")" -output "$gen/sim/liberth_mobile.a"
xcargs=(-library "$(lib "$ios")" -headers "$headers" -library "$gen/sim/liberth_mobile.a" -headers "$headers")
if [[ "${ERTH_APPLE_SKIP_MACOS:-0}" != 1 ]]; then
  lipo -create "$(lib "${macs[0]}")" "$(lib "${macs[1]}")" -output "$gen/macos/liberth_mobile.a"
  xcargs+=(-library "$gen/macos/liberth_mobile.a" -headers "$headers")
fi

rm -rf "$out"
mkdir -p "$out/Sources/ErthSync"
xcodebuild -create-xcframework "${xcargs[@]}" -output "$out/ErthSyncFFI.xcframework"
cp "$gen"/*.swift "$root"/bindings-mobile/swift/*.swift "$out/Sources/ErthSync/"
cp "$root/bindings-mobile/scripts/apple/Package.swift" "$out/Package.swift"

echo "Swift package ready: $out"
echo "Xcode: File > Add Package Dependencies... > Add Local..., pick $out, link product ErthSync."
