/// @file
/// coronet/version.hpp - which coronet this is.
///
/// meson.build's `project(version : ...)` is the single source of the version: this
/// header is checked in (so it works straight from the source tree, with no build
/// step), and meson.build refuses to configure when the numbers below differ from
/// it. A release changes both in the same commit.
#pragma once

#include <string_view>

/// The major version: changes when a release breaks source compatibility.
#define CORONET_VERSION_MAJOR 0
/// The minor version: new features, source compatible (before 1.0, may break).
#define CORONET_VERSION_MINOR 1
/// The patch version: fixes only.
#define CORONET_VERSION_PATCH 0
/// "MAJOR.MINOR.PATCH", as in meson.build, coronet.pc and the CMake package.
#define CORONET_VERSION_STRING "0.1.0"
/// One number that compares in release order: MAJOR * 10000 + MINOR * 100 + PATCH.
#define CORONET_VERSION \
  (CORONET_VERSION_MAJOR * 10000 + CORONET_VERSION_MINOR * 100 + CORONET_VERSION_PATCH)

namespace coronet {

/// The version of the coronet headers this translation unit was compiled with,
/// as "MAJOR.MINOR.PATCH" (CORONET_VERSION_STRING). Never throws.
constexpr std::string_view version() noexcept { return CORONET_VERSION_STRING; }

}  // namespace coronet
