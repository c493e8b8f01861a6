/*
 * The cluster agent through the C ABI, without etcd: argument errors, and the lifecycle of an
 * agent whose store is unreachable (started, never ready, status as JSON, freed).
 */
#include <stdlib.h>

#include "check.h"

void test_agent(void) {
    podnet_node_config *cfg = NULL;
    podnet_agent *agent = NULL;
    const char *good[] = {"http://127.0.0.1:9"};
    const char *bad[] = {"etcd.example:2379"};
    CHECK_OK(podnet_node_config_new("cagent", &cfg, &err));

    REFUSED(PODNET_STATUS_NULL_ARGUMENT, "podnet_agent_start",
            podnet_agent_start(NULL, good, 1, NULL, 0, NULL, &agent, &err));
    REFUSED(PODNET_STATUS_NULL_ARGUMENT, "podnet_agent_start",
            podnet_agent_start(cfg, good, 1, NULL, 0, NULL, NULL, &err));
    /* No underlay address: the lease's PublicIP is missing. */
    REFUSED(PODNET_STATUS_INVALID_ARGUMENT, "start agent",
            podnet_agent_start(cfg, good, 1, NULL, 0, NULL, &agent, &err));
    CHECK_OK(podnet_node_config_set_underlay(cfg, "10.0.0.1", NULL, &err));
    REFUSED(PODNET_STATUS_INVALID_ARGUMENT, "check etcd endpoints",
            podnet_agent_start(cfg, good, 0, NULL, 0, NULL, &agent, &err));
    REFUSED(PODNET_STATUS_INVALID_ARGUMENT, "check etcd endpoints",
            podnet_agent_start(cfg, bad, 1, NULL, 0, NULL, &agent, &err));
    REFUSED(PODNET_STATUS_INVALID_ARGUMENT, "start agent",
            podnet_agent_start(cfg, good, 1, "no-slash", 0, NULL, &agent, &err));
    REFUSED(PODNET_STATUS_INVALID_ARGUMENT, "start agent",
            podnet_agent_start(cfg, good, 1, NULL, 1, NULL, &agent, &err));
    CHECK(agent == NULL);

    CHECK_OK(podnet_agent_start(cfg, good, 1, "/coreos.com/network", 60, "/tmp/podnet-ctest-agent.json",
                                &agent, &err));
    podnet_node_config_free(cfg);
    CHECK(agent != NULL);
    CHECK(!podnet_agent_is_ready(agent));
    REFUSED(PODNET_STATUS_IO, "wait for agent", podnet_agent_wait_ready(agent, 200, &err));
    podnet_bytes *json = NULL;
    CHECK_OK(podnet_agent_status_json(agent, &json, &err));
    CHECK(json != NULL);
    if (json != NULL) {
        size_t n = podnet_bytes_len(json);
        char *s = malloc(n + 1);
        memcpy(s, podnet_bytes_data(json), n);
        s[n] = 0;
        CHECK(strstr(s, "\"ready\":false") != NULL);
        CHECK(strstr(s, "\"node\":\"cagent\"") != NULL);
        free(s);
    }
    podnet_bytes_free(json);
    REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, podnet_agent_status_json, agent, NULL, &err);
    REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, podnet_agent_wait_ready, NULL, 0, &err);
    REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, podnet_agent_leave, NULL, &err);
    CHECK(!podnet_agent_is_ready(NULL));
    podnet_agent_free(agent);
    podnet_agent_free(NULL);
    remove("/tmp/podnet-ctest-agent.json");
}
