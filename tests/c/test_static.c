/*
 * Links libpodnet.a the way a static consumer does (the archive plus pkg-config's
 * Libs.private) and makes a few calls that need no privileges (config, status names, the
 * planner).
 */
#include <stdio.h>
#include <string.h>

#include <podnet.h>

int main(void) {
    podnet_node_config *cfg = NULL;
    int failed = 0;
    if (strcmp(podnet_version(), PODNET_VERSION) != 0) failed++;
    if (podnet_node_config_new("static", &cfg, NULL) != PODNET_STATUS_OK) failed++;
    if (podnet_node_config_add_pod_cidr(cfg, "10.1.0.0/24", NULL) != PODNET_STATUS_OK) failed++;
    if (podnet_node_config_validate(cfg, NULL) != PODNET_STATUS_OK) failed++;
    podnet_node_config_free(cfg);
    if (strcmp(podnet_status_str(PODNET_STATUS_NOT_FOUND), "not_found") != 0) failed++;
    /* the planner (pure computation, JSON output) from the archive */
    {
        podnet_plan_input *in = NULL;
        podnet_plan_result *plan = NULL;
        if (podnet_plan_input_new(&in, NULL) != PODNET_STATUS_OK ||
            podnet_plan_input_add_cluster_cidr(in, "10.10.0.0/16", NULL) != PODNET_STATUS_OK ||
            podnet_plan_input_set_machine_subnet(in, "10.1.0.0/24", NULL) != PODNET_STATUS_OK ||
            podnet_plan_input_set_control_plane(in, 9, NULL) != PODNET_STATUS_OK ||
            podnet_plan(in, &plan, NULL) != PODNET_STATUS_OK || podnet_plan_result_get_info(plan)->pod_capacity != 62230 ||
            strstr(podnet_plan_result_get_info(plan)->json, "\"workers\":245") == NULL)
            failed++;
        podnet_plan_result_free(plan);
        podnet_plan_input_free(in);
    }
    printf("static: %d passed, %d failed\n", 6 - failed, failed);
    return failed != 0;
}
