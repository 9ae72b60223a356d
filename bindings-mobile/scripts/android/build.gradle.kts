// Gradle module for the Erth Sync Android library, copied next to the
// generated Kotlin sources and jniLibs by scripts/build-android.sh.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.erth.sync"
    compileSdk = 35
    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
}

dependencies {
    // UniFFI's Kotlin bindings call the native library through JNA (the
    // Android flavour, packaged as an AAR with its own native parts).
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    // `api`: ErthDb.watchFlow returns a kotlinx.coroutines Flow.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.9.0")
}
