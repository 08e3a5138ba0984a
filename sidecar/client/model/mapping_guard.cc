// Intentionally empty: the guard's registry and handler moved to common/mapping_guard.cc, shared
// with the channel and region clients. This file stays only because sidecar/client/model's
// CMakeLists.txt still lists it; it can go when that list drops it.
#include "sidecar/client/model/mapping_guard.h"
