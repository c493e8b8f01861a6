/*
 * C tests of libpodnet, part 6: services. The `podnet_service` builder and its record, the bad
 * input of every new pointer and value argument, and on the test node (service CIDR
 * 10.96.0.0/16): set / list / conflict / remove / sync, a real TCP connect from one pod through
 * a ClusterIP to another pod (a busybox `nc` server in the pod netns, started by the test in its
 * own world), connection refused without ready endpoints and on an unknown port, repair after
 * the table was deleted, and a second handle (as another process) sharing the services.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char NOT_UTF8[] = "s\xe2\x28\xa1";

/* A service with one ClusterIP and one TCP port, and an endpoint unless `ep` is NULL. */
static podnet_service *make_service(const char *name, const char *cluster_ip, uint16_t port, const char *ep) {
    podnet_service *s = NULL;
    CHECK_OK(podnet_service_new(name, &s, &err));
    CHECK_OK(podnet_service_add_cluster_ip(s, cluster_ip, &err));
    CHECK_OK(podnet_service_add_port(s, PODNET_PROTOCOL_TCP, port, 8080, 0, &err));
    if (ep) CHECK_OK(podnet_service_add_endpoint(s, ep, NULL, 0, true, true, &err));
    return s;
}

DEFINE_LIST_COUNT(service_count, podnet_service_list, podnet_node_service_list, podnet_service_list_count, podnet_service_list_free)

/* The builder, its record and its bad input: no node needed. */
void test_service_builder(void) {
    static int passed;
    podnet_service *s = NULL, *sentinel = (podnet_service *)&passed;
    const podnet_service_info *info;
    char long_name[300];
    const uint16_t two[] = {8080, 8443}, zero[] = {0};
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    REFUSED_NEW(podnet_service_new, "a", sentinel, long_name);
    REFUSED_CALL(ARG, podnet_service_new, "", &sentinel, &err);
    REFUSED_CALL(ARG, podnet_service_new, "default/my web", &sentinel, &err);
    CHECK(sentinel == (podnet_service *)&passed);
    CHECK_NAME_MAX(podnet_service_new, podnet_service_free, s, long_name, 253);

    CHECK_OK(podnet_service_new("default/web", &s, &err));
    REFUSED_CALL(NUL, podnet_service_add_cluster_ip, NULL, "10.96.0.10", &err);
    REFUSED_CALL(NUL, podnet_service_add_cluster_ip, s, NULL, &err);
    REFUSED_CALL(ADDR, podnet_service_add_cluster_ip, s, "10.96.0", &err);
    REFUSED_CALL(ARG, podnet_service_add_cluster_ip, s, "224.0.0.1", &err);
    CHECK_OK(podnet_service_add_cluster_ip(s, "10.96.0.10", &err));
    CHECK_OK(podnet_service_add_cluster_ip(s, "10.96.0.10", &err)); /* the same again: fine */
    REFUSED_CALL(ARG, podnet_service_add_cluster_ip, s, "10.96.0.11", &err);
    CHECK_OK(podnet_service_add_cluster_ip(s, "fd00:96::a", &err));
    REFUSED_CALL(NUL, podnet_service_add_port, NULL, PODNET_PROTOCOL_TCP, 80, 8080, 0, &err);
    REFUSED_CALL(ARG, podnet_service_add_port, s, 99, 80, 8080, 0, &err);
    REFUSED_CALL(ARG, podnet_service_add_port, s, PODNET_PROTOCOL_TCP, 0, 8080, 0, &err);
    REFUSED_CALL(ARG, podnet_service_add_port, s, PODNET_PROTOCOL_TCP, 80, 0, 0, &err);
    CHECK_OK(podnet_service_add_port(s, PODNET_PROTOCOL_TCP, 80, 8080, 30080, &err));
    REFUSED_CALL(ARG, podnet_service_add_port, s, PODNET_PROTOCOL_TCP, 80, 9090, 0, &err);
    REFUSED_CALL(ARG, podnet_service_add_port, s, PODNET_PROTOCOL_TCP, 81, 9090, 30080, &err);
    CHECK_OK(podnet_service_add_port(s, PODNET_PROTOCOL_UDP, 80, 8443, 30080, &err)); /* other protocol */
    REFUSED_CALL(NUL, podnet_service_add_external_ip, s, NULL, &err);
    REFUSED_CALL(ADDR, podnet_service_add_external_ip, s, "198.51.100.300", &err);
    REFUSED_CALL(ARG, podnet_service_add_external_ip, s, "0.0.0.0", &err);
    CHECK_OK(podnet_service_add_external_ip(s, "198.51.100.7", &err));
    REFUSED_CALL(NUL, podnet_service_add_endpoint, s, NULL, NULL, 0, true, false, &err);
    REFUSED_CALL(NUL, podnet_service_add_endpoint, s, "10.88.0.5", NULL, 2, true, false, &err);
    REFUSED_CALL(ADDR, podnet_service_add_endpoint, s, "10.88.0", NULL, 0, true, false, &err);
    REFUSED_CALL(ARG, podnet_service_add_endpoint, s, "10.88.0.5", zero, 1, true, false, &err);
    CHECK_OK(podnet_service_add_endpoint(s, "10.88.0.5", two, 2, true, false, &err));
    REFUSED_CALL(ARG, podnet_service_add_endpoint, s, "10.88.0.5", NULL, 0, true, false, &err);
    CHECK_OK(podnet_service_add_endpoint(s, "10.88.0.6", NULL, 0, false, true, &err));
    REFUSED_CALL(NUL, podnet_service_set_affinity_timeout, NULL, 10, &err);
    REFUSED_CALL(ARG, podnet_service_set_affinity_timeout, s, 86401, &err);
    CHECK_OK(podnet_service_set_affinity_timeout(s, 10800, &err));
    REFUSED_CALL(NUL, podnet_service_set_traffic_policy, NULL, PODNET_TRAFFIC_POLICY_LOCAL, &err);
    REFUSED_CALL(ARG, podnet_service_set_traffic_policy, s, 0, &err);
    REFUSED_CALL(ARG, podnet_service_set_traffic_policy, s, 3, &err);
    CHECK_OK(podnet_service_set_traffic_policy(s, PODNET_TRAFFIC_POLICY_LOCAL, &err));

    info = podnet_service_get_info(s);
    CHECK(info != NULL);
    if (info) {
        CHECK_INT(info->struct_size, sizeof(podnet_service_info));
        CHECK_STR(info->name, "default/web");
        CHECK_INT(info->cluster_ips.count, 2);
        CHECK_STR(info->cluster_ips.items[0], "10.96.0.10");
        CHECK_STR(info->cluster_ips.items[1], "fd00:96::a");
        CHECK_INT(info->port_count, 2);
        CHECK_INT(info->ports[0].protocol, PODNET_PROTOCOL_TCP);
        CHECK_INT(info->ports[0].port, 80);
        CHECK_INT(info->ports[0].target_port, 8080);
        CHECK_INT(info->ports[0].node_port, 30080);
        CHECK_INT(info->ports[1].protocol, PODNET_PROTOCOL_UDP);
        CHECK_INT(info->external_ips.count, 1);
        CHECK_STR(info->external_ips.items[0], "198.51.100.7");
        CHECK_INT(info->endpoint_count, 2);
        CHECK_STR(info->endpoints[0].ip, "10.88.0.5");
        CHECK_INT(info->endpoints[0].port_count, 2);
        CHECK_INT(info->endpoints[0].ports[1], 8443);
        CHECK(info->endpoints[0].ready && !info->endpoints[0].local);
        CHECK_STR(info->endpoints[1].ip, "10.88.0.6");
        CHECK_INT(info->endpoints[1].port_count, 0);
        CHECK(!info->endpoints[1].ready && info->endpoints[1].local);
        CHECK_INT(info->affinity_timeout_secs, 10800);
        CHECK_INT(info->external_traffic_policy, PODNET_TRAFFIC_POLICY_LOCAL);
    }
    CHECK_OK(podnet_service_set_affinity_timeout(s, 0, &err)); /* off again; the view follows */
    CHECK_INT(podnet_service_get_info(s)->affinity_timeout_secs, 0);
    podnet_service_free(s);

    {
        podnet_node_config *cfg = NULL;
        CHECK_OK(podnet_node_config_new("svccfg", &cfg, &err));
        REFUSED_CALL(NUL, podnet_node_config_add_service_cidr, NULL, "10.96.0.0/12", &err);
        REFUSED_CALL(NUL, podnet_node_config_add_service_cidr, cfg, NULL, &err);
        REFUSED_CIDR(podnet_node_config_add_service_cidr, cfg);
        REFUSED_CALL(ARG, podnet_node_config_add_service_cidr, cfg, "10.96.0.1/12", &err);
        CHECK_OK(podnet_node_config_add_service_cidr(cfg, "10.96.0.0/12", &err));
        CHECK_OK(podnet_node_config_add_service_cidr(cfg, "10.96.0.0/12", &err)); /* twice: fine */
        CHECK_OK(podnet_node_config_add_pod_cidr(cfg, "10.100.0.0/24", &err));
        REFUSED(ARG, NULL, podnet_node_config_validate(cfg, &err)); /* overlaps the pod CIDR */
        podnet_node_config_free(cfg);
    }

    CHECK(podnet_service_get_info(NULL) == NULL);
    CHECK_INT(podnet_service_list_count(NULL), 0);
    CHECK(podnet_service_list_at(NULL, 0) == NULL);
    podnet_service_free(NULL);
    podnet_service_list_free(NULL);
}

/* A pod's first address without its prefix length. */
static void pod_ip(podnet_sandbox *sb, char *buf, size_t len) {
    snprintf(buf, len, "%s", sb ? podnet_sandbox_get_info(sb)->ips.items[0] : "");
    if (strchr(buf, '/')) *strchr(buf, '/') = '\0';
}

/* The node's service calls, with real traffic between two pods of the test node. */
void test_services(void) {
    podnet_sandbox *a = NULL, *b = NULL;
    podnet_service *web = NULL, *clash = NULL, *outside = NULL, *empty = NULL, *other = NULL;
    podnet_service_list *list = NULL;
    podnet_node *second = NULL;
    podnet_node_config *cfg = NULL;
    const podnet_service *all[2];
    char b_ip[64] = "", cmd[512];
    bool rebuilt = true;
    a = test_sandbox_create("svc-a");
    b = test_sandbox_create("svc-b");
    if (a == NULL || b == NULL) goto out;
    pod_ip(b, b_ip, sizeof b_ip);

    /* bad input at the node calls */
    web = make_service("default/web", "10.96.0.10", 80, b_ip);
    REFUSED_CALL(NUL, podnet_node_service_set, NULL, web, &err);
    REFUSED_CALL(NUL, podnet_node_service_set, test_node, NULL, &err);
    REFUSED_CALL(NUL, podnet_node_service_remove, test_node, NULL, &err);
    REFUSED_CALL(PODNET_STATUS_INVALID_UTF8, podnet_node_service_remove, test_node, NOT_UTF8, &err);
    REFUSED_CALL(NUL, podnet_node_services_sync, test_node, NULL, 1, &err);
    all[0] = NULL;
    REFUSED_CALL(NUL, podnet_node_services_sync, test_node, all, 1, &err);
    REFUSED_CALL(NUL, podnet_node_service_list, test_node, NULL, &err);
    REFUSED_CALL(NUL, podnet_node_services_repair, test_node, NULL, &err);
    /* a ClusterIP outside the node's service CIDRs, a service without a port */
    outside = make_service("default/outside", "10.97.0.10", 80, NULL);
    REFUSED(PODNET_STATUS_INVALID_ARGUMENT, NULL, podnet_node_service_set(test_node, outside, &err));
    CHECK_OK(podnet_service_new("default/empty", &empty, &err));
    CHECK_OK(podnet_service_add_cluster_ip(empty, "10.96.0.12", &err));
    REFUSED(PODNET_STATUS_INVALID_ARGUMENT, NULL, podnet_node_service_set(test_node, empty, &err));
    CHECK_INT(service_count(test_node), 0);
    CHECK(sh_fails("nft list tables | grep -q podnet-services")); /* nothing programmed */

    /* set, list, a real connect through the ClusterIP */
    snprintf(cmd, sizeof cmd,
             "ip netns exec pn-ctest-svc-b busybox nc -ll -p 8080 -e echo svc-b & echo $! > /run/svc-b.pid");
    CHECK(sh_ok(cmd));
    CHECK_OK(podnet_node_service_set(test_node, web, &err));
    CHECK_OK(podnet_node_service_set(test_node, web, &err)); /* the same again: no change */
    CHECK_OK(podnet_node_service_list(test_node, &list, &err));
    CHECK_INT(podnet_service_list_count(list), 1);
    if (podnet_service_list_count(list) == 1) {
        const podnet_service_info *i = podnet_service_get_info(podnet_service_list_at(list, 0));
        CHECK_STR(i->name, "default/web");
        CHECK_STR(i->cluster_ips.items[0], "10.96.0.10");
        CHECK_STR(i->endpoints[0].ip, b_ip);
    }
    CHECK(podnet_service_list_at(list, 1) == NULL);
    podnet_service_list_free(list);
    list = NULL;
    CHECK(sh_ok("nft list set inet podnet-services clusterips4 | grep -q 10.96.0.10"));
    CHECK(sh_ok("for i in 1 2 3 4 5 6 7 8 9 10; do "
                "ip netns exec pn-ctest-svc-a busybox nc -w 2 10.96.0.10 80 </dev/null 2>/dev/null | grep -q svc-b "
                "&& exit 0; sleep 0.1; done; exit 1"));
    /* an unknown port on a live ClusterIP: refused at once */
    CHECK(sh_fails("ip netns exec pn-ctest-svc-a busybox nc -w 2 10.96.0.10 81 </dev/null 2>/dev/null"));

    /* another service on the same IP/port/protocol: conflict, nothing changes */
    clash = make_service("default/clash", "10.96.0.10", 80, NULL);
    REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_node_service_set(test_node, clash, &err));
    all[0] = web;
    all[1] = clash;
    REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_node_services_sync(test_node, all, 2, &err));
    CHECK_INT(service_count(test_node), 1);

    /* no ready endpoint: connection refused (not a timeout) */
    other = make_service("default/web", "10.96.0.10", 80, NULL);
    CHECK_OK(podnet_node_service_set(test_node, other, &err));
    CHECK(sh_fails("ip netns exec pn-ctest-svc-a busybox nc -w 2 10.96.0.10 80 </dev/null 2>/dev/null"));
    CHECK_OK(podnet_node_service_set(test_node, web, &err));

    /* repair: healthy table untouched; a deleted table comes back and serves again */
    CHECK_OK(podnet_node_services_repair(test_node, &rebuilt, &err));
    CHECK(!rebuilt);
    CHECK(sh_ok("nft delete table inet podnet-services"));
    CHECK_OK(podnet_node_services_repair(test_node, &rebuilt, &err));
    CHECK(rebuilt);
    CHECK(sh_ok("ip netns exec pn-ctest-svc-a busybox nc -w 2 10.96.0.10 80 </dev/null | grep -q svc-b"));

    /* a second handle on the node (as another process would be) shares the services through
     * the node's store: it sees web, a clash is refused there too, its removal is the first
     * handle's, and the first handle's set is its */
    CHECK_OK(podnet_node_config_new("ctest", &cfg, &err));
    CHECK_OK(podnet_node_config_add_pod_cidr(cfg, "10.88.0.0/24", &err));
    CHECK_OK(podnet_node_config_add_service_cidr(cfg, "10.96.0.0/16", &err));
    CHECK_OK(podnet_node_open(cfg, &second, &err));
    podnet_node_config_free(cfg);
    if (second) {
        CHECK_INT(service_count(second), 1);
        REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_node_service_set(second, clash, &err));
        CHECK_OK(podnet_node_service_remove(second, "default/web", &err));
        CHECK_INT(service_count(test_node), 0);
        CHECK(sh_fails("ip netns exec pn-ctest-svc-a busybox nc -w 1 10.96.0.10 80 </dev/null 2>/dev/null"));
        CHECK_OK(podnet_node_service_set(test_node, web, &err));
        CHECK_INT(service_count(second), 1);
        CHECK(sh_ok("ip netns exec pn-ctest-svc-a busybox nc -w 2 10.96.0.10 80 </dev/null | grep -q svc-b"));
        podnet_node_free(second);
    }

    /* repair after the table was deleted: rebuilt from the services, serves again */
    CHECK(sh_ok("nft delete table inet podnet-services"));
    CHECK_OK(podnet_node_services_repair(test_node, &rebuilt, &err));
    CHECK(rebuilt);
    CHECK(sh_ok("ip netns exec pn-ctest-svc-a busybox nc -w 2 10.96.0.10 80 </dev/null | grep -q svc-b"));

    /* remove (twice: idempotent); sync to nothing */
    CHECK_OK(podnet_node_service_remove(test_node, "default/web", &err));
    CHECK_OK(podnet_node_service_remove(test_node, "default/web", &err));
    CHECK_INT(service_count(test_node), 0);
    /* an address in the service CIDR with no service: dropped (a timeout, not a refusal) */
    CHECK(sh_fails("ip netns exec pn-ctest-svc-a busybox nc -w 1 10.96.0.10 80 </dev/null 2>/dev/null"));
    all[0] = web;
    CHECK_OK(podnet_node_services_sync(test_node, all, 1, &err));
    CHECK_INT(service_count(test_node), 1);
    CHECK_OK(podnet_node_services_sync(test_node, NULL, 0, &err));
    CHECK_INT(service_count(test_node), 0);

out:
    sh_ok("kill $(cat /run/svc-b.pid) 2>/dev/null; rm -f /run/svc-b.pid; true");
    podnet_service_free(web);
    podnet_service_free(clash);
    podnet_service_free(outside);
    podnet_service_free(empty);
    podnet_service_free(other);
    podnet_sandbox_free(a);
    podnet_sandbox_free(b);
    CHECK_OK(podnet_node_sandbox_delete(test_node, "svc-a", &err));
    CHECK_OK(podnet_node_sandbox_delete(test_node, "svc-b", &err));
}
