#!/usr/bin/env bash
# Builds the Erth Sync Android library module: liberth_mobile.so for each
# Android ABI (cargo-ndk -> src/main/jniLibs/<abi>/) plus the generated Kotlin
# bindings (package dev.erth.sync, and the core's records and enums in
# dev.erth.sync.core) with the hand-written Kotlin of bindings-mobile/kotlin/
# (ErthDb.watchFlow), laid out as a Gradle module you can include in an app.
#
# Run on your own machine from anywhere inside the repository:
#   bindings-mobile/scripts/build-android.sh [OUT_DIR]   (default: target/android/erth-sync)
#
# Needs: rustup, the Android NDK (ANDROID_NDK_HOME, or ANDROID_HOME with one
# NDK under ndk/), and cargo-ndk (`cargo install cargo-ndk`). The ABIs are
# taken from ERTH_ANDROID_ABIS (default: arm64-v8a armeabi-v7a x86_64 x86);
# ERTH_ANDROID_API sets the minimum API level (default 24).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$root/target/android/erth-sync}"
abis="${ERTH_ANDROID_ABIS:-arm64-v8a armeabi-v7a x86_64 x86}"
api="${ERTH_ANDROID_API:-24}"

die() { echo "build-android: $*" >&2; exit 1; }
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup"
cargo ndk --version >/dev/null 2>&1 || die "cargo-ndk not found: cargo install cargo-ndk"
if [[ -z "${ANDROID_NDK_HOME:-}" ]]; then
  [[ -n "${ANDROID_HOME:-}" && -d "$ANDROID_HOME/ndk" ]] ||
    die "set ANDROID_NDK_HOME to your NDK (Android Studio: SDK Manager > SDK Tools > NDK)"
fi

# (A function, not an associative array: macOS ships bash 3.2.)
rust_target() {
  case "$1" in
    arm64-v8a) echo aarch64-linux-android ;;
    armeabi-v7a) echo armv7-linux-androideabi ;;
    x86_64) echo x86_64-linux-android ;;
    x86) echo i686-linux-android ;;
    *) die "unknown ABI $1 (known: arm64-v8a armeabi-v7a x86_64 x86)" ;;
  esac
}
ndk_args=()
for abi in $abis; do
  target="$(rust_target "$abi")"
  rustup target add "$target"
  ndk_args+=(-t "$abi")
done

cd "$root"
mkdir -p "$out/src/main/jniLibs" "$out/src/main/kotlin"
# One release build per ABI, copied to src/main/jniLibs/<abi>/liberth_mobile.so.
cargo ndk "${ndk_args[@]}" --platform "$api" -o "$out/src/main/jniLibs" \
  build -p erth-mobile --release

# The Kotlin bindings come from a host build of the same crate (UniFFI reads
# the API from the library's metadata, which is the same on every target).
cargo build -p erth-mobile --release
cargo build -p uniffi-bindgen --release
case "$(uname -s)" in
  Darwin) host_lib="target/release/liberth_mobile.dylib" ;;
  *) host_lib="target/release/liberth_mobile.so" ;;
esac
[[ -n "${CARGO_TARGET_DIR:-}" ]] && host_lib="$CARGO_TARGET_DIR/${host_lib#target/}"
bindgen="${CARGO_TARGET_DIR:-target}/release/uniffi-bindgen"
"$bindgen" generate --library "$host_lib" --language kotlin \
  --out-dir "$out/src/main/kotlin" --no-format
cp -R "$root/bindings-mobile/kotlin/." "$out/src/main/kotlin/"

cp "$root/bindings-mobile/scripts/android/build.gradle.kts" "$out/build.gradle.kts"
cp "$root/bindings-mobile/scripts/android/consumer-rules.pro" "$out/consumer-rules.pro"

echo "Android library module ready: $out"
find "$out/src/main/jniLibs" -name '*.so' -exec ls -l {} \;
echo "Add it to your app: settings.gradle.kts: include(\":erth-sync\"); project(\":erth-sync\").projectDir = file(\"$out\")"
echo "and in app/build.gradle.kts: implementation(project(\":erth-sync\"))"
