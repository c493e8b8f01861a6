/*
 * Links libpodnet.a the way a static consumer does (the archive plus pkg-config's
 * Libs.private) and makes a few calls that need no privileges.
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
    printf("static: %d passed, %d failed\n", 5 - failed, failed);
    return failed != 0;
}
