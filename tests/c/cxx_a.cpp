// podnet.h from C++, translation unit A (with B: the header links cleanly into one program
// from two C++ TUs: no definitions, only declarations, C linkage).
#include <podnet.h>

#include <cstdio>
#include <cstring>
#include <type_traits>

static_assert(sizeof(podnet_status) == sizeof(uint32_t), "podnet_status is a uint32_t");
static_assert(std::is_same<std::underlying_type<podnet_status>::type, uint32_t>::value, "fixed underlying type");
static_assert(PODNET_STATUS_PANIC == 13, "status values are ABI");

int run_b();

int main() {
    int failed = 0;
    if (std::strcmp(podnet_version(), PODNET_VERSION) != 0) failed++;
    podnet_status st = PODNET_STATUS_NOT_FOUND;
    if (std::strcmp(podnet_status_str(st), "not_found") != 0) failed++;
    if (std::strcmp(podnet_status_str(static_cast<podnet_status>(4000)), "unknown") != 0) failed++;
    failed += run_b();
    std::printf("cxx: %d failed\n", failed);
    return failed != 0;
}
