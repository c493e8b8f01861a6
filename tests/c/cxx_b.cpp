// podnet.h from C++, translation unit B: builder objects and error values.
#include <podnet.h>

#include <cstring>

int run_b() {
    int failed = 0;
    podnet_sandbox_spec *spec = nullptr;
    podnet_error *err = nullptr;
    if (podnet_sandbox_spec_new("cxx-1", &spec, &err) != PODNET_STATUS_OK) failed++;
    if (podnet_sandbox_spec_set_ifname(spec, "this-is-too-long", &err) != PODNET_STATUS_TOO_LONG) failed++;
    if (err == nullptr || std::strcmp(podnet_error_operation(err), "podnet_sandbox_spec_set_ifname") != 0) failed++;
    podnet_error_free(err);
    if (podnet_sandbox_spec_add_port(spec, PODNET_PROTOCOL_TCP, nullptr, 80, 8080, nullptr) != PODNET_STATUS_OK) failed++;
    podnet_sandbox_spec_free(spec);
    podnet_mode mode = PODNET_MODE_ROUTED;
    if (podnet_sandbox_mode(nullptr) == mode) failed++;
    return failed;
}
