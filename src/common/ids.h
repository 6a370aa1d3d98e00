#pragma once

#include <string>

namespace almanac {

// A random (version 4) UUID in its canonical lowercase text form. Thread-safe.
std::string NewUuid();

// True when `s` is a UUID in canonical text form (any version).
bool IsUuid(const std::string& s);

}  // namespace almanac
