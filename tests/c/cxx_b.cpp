// podnet.h from C++, translation unit B: builder objects, error values, the multi-node and
// planning objects.
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
    if (podnet_sandbox_get_info(nullptr) != nullptr || mode != PODNET_MODE_ROUTED) failed++;
    // Multi-node and planning: new enums and objects from C++.
    podnet_node_config *cfg = nullptr;
    if (podnet_node_config_new("cxx", &cfg, nullptr) != PODNET_STATUS_OK) failed++;
    if (podnet_node_config_set_cross_node_mode(cfg, PODNET_CROSS_NODE_MODE_AUTO, nullptr) != PODNET_STATUS_OK) failed++;
    if (podnet_node_config_set_underlay(cfg, "10.200.0.1", nullptr, nullptr) != PODNET_STATUS_OK) failed++;
    podnet_node_config_free(cfg);
    podnet_plan_input *in = nullptr;
    podnet_plan_result *plan = nullptr;
    if (podnet_plan_input_new(&in, nullptr) != PODNET_STATUS_OK) failed++;
    if (podnet_plan_input_add_cluster_cidr(in, "10.10.0.0/16", nullptr) != PODNET_STATUS_OK) failed++;
    if (podnet_plan(in, &plan, nullptr) != PODNET_STATUS_OK) failed++;
    const podnet_plan_result_info *info = podnet_plan_result_get_info(plan);
    if (info->struct_size != sizeof(podnet_plan_result_info) || info->pods_per_node != 254) failed++;
    podnet_plan_warning w = info->warning_count ? info->warnings[0].code : PODNET_PLAN_WARNING_UNKNOWN;
    if (w != PODNET_PLAN_WARNING_UNKNOWN) failed++;
    podnet_plan_result_free(plan);
    podnet_plan_input_free(in);
    char ip[PODNET_IP_STR_LEN];
    podnet_service_ip_allocator *sa = nullptr;
    if (podnet_service_ip_allocator_new("10.0.0.0/30", &sa, nullptr) != PODNET_STATUS_OK) failed++;
    if (podnet_service_ip_allocator_allocate_next(sa, ip, sizeof ip, nullptr) != PODNET_STATUS_OK) failed++;
    if (std::strcmp(ip, "10.0.0.2") != 0) failed++;
    podnet_service_ip_allocator_free(sa);
    return failed;
}
