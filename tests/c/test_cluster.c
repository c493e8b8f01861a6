/*
 * C tests of libpodnet, part 3: cluster address planning and the two cluster allocators. Pure
 * computation, no node and no privilege needed: the worked example's exact numbers, saturation
 * of 64-bit counts, allocators round-tripping through bytes, and the bad-input table for every
 * pointer argument.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char NOT_UTF8[] = "10.\xff.0.0/16";

static int starts_with(const char *s, const char *prefix) {
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int contains(const char *s, const char *needle) {
    return s != NULL && strstr(s, needle) != NULL;
}

/* A plan input given as data: up to two cluster CIDRs and node masks (NULL / 0 end them early),
 * the control-plane count (0: unset) and one service range (NULL: none). */
struct plan_case {
    const char *clusters[2];
    uint8_t masks[2];
    uint64_t control_plane;
    const char *service;
};

/* Plans `c`, every call CHECK_OK, in the order the fields are listed; the result is the caller's. */
static podnet_plan_result *plan_of(struct plan_case c) {
    podnet_plan_input *in = NULL;
    podnet_plan_result *plan = NULL;
    size_t i;
    CHECK_OK(podnet_plan_input_new(&in, &err));
    for (i = 0; i < 2 && c.clusters[i]; i++) CHECK_OK(podnet_plan_input_add_cluster_cidr(in, c.clusters[i], &err));
    for (i = 0; i < 2 && c.masks[i]; i++) CHECK_OK(podnet_plan_input_add_node_mask(in, c.masks[i], &err));
    if (c.control_plane) CHECK_OK(podnet_plan_input_set_control_plane(in, c.control_plane, &err));
    if (c.service) CHECK_OK(podnet_plan_input_add_service_cidr(in, c.service, &err));
    CHECK_OK(podnet_plan(in, &plan, &err));
    podnet_plan_input_free(in);
    return plan;
}

/* The README's worked example: 10.10.0.0/16 cut into /24s, machines in 10.1.0.0/24, 9
 * control-plane nodes, services in 10.0.0.0/16. */
void test_plan(void) {
    podnet_plan_input *in = NULL;
    podnet_plan_result *plan = NULL;
    const char *json;

    CHECK_OK(podnet_plan_input_new(&in, &err));
    CHECK_OK(podnet_plan_input_add_cluster_cidr(in, "10.10.0.0/16", &err));
    CHECK_OK(podnet_plan_input_add_cluster_cidr(in, "10.10.0.0/16", &err)); /* again: fine */
    CHECK_OK(podnet_plan_input_add_node_mask(in, 24, &err));
    CHECK_OK(podnet_plan_input_set_machine_subnet(in, "10.1.0.0/24", &err));
    CHECK_OK(podnet_plan_input_set_control_plane(in, 9, &err));
    CHECK_OK(podnet_plan_input_add_service_cidr(in, "10.0.0.0/16", &err));
    CHECK_OK(podnet_plan(in, &plan, &err));
    CHECK(plan != NULL);
    CHECK_INT(podnet_plan_result_get_info(plan)->nodes, 254);
    CHECK_INT(podnet_plan_result_get_info(plan)->control_plane, 9);
    CHECK_INT(podnet_plan_result_get_info(plan)->workers, 245);
    CHECK_INT(podnet_plan_result_get_info(plan)->pods_per_node, 254);
    CHECK_INT(podnet_plan_result_get_info(plan)->pod_capacity, 62230);
    CHECK_INT(podnet_plan_result_get_info(plan)->service_count, 1);
    CHECK_STR(podnet_plan_result_get_info(plan)->services[0].cidr, "10.0.0.0/16");
    CHECK_INT(podnet_plan_result_get_info(plan)->services[0].service_ips, 65534);
    /* 256 node CIDRs but 254 machine addresses */
    CHECK_INT(podnet_plan_result_get_info(plan)->warning_count, 1);
    CHECK_INT(podnet_plan_result_get_info(plan)->warnings[0].code, PODNET_PLAN_WARNING_NODE_CIDRS_EXCEED_MACHINES);
    CHECK(contains(podnet_plan_result_get_info(plan)->warnings[0].message, "10.1.0.0/24"));
    json = podnet_plan_result_get_info(plan)->json;
    CHECK(json != NULL && json[0] == '{' && strchr(json, '\n') == NULL);
    CHECK(contains(json, "\"pod_capacity\":62230"));
    CHECK(contains(json, "\"workers\":245"));
    CHECK(contains(json, "\"last_node_cidr\":\"10.10.255.0/24\""));
    CHECK(contains(json, "\"api_server_ip\":\"10.0.0.1\""));
    CHECK(contains(json, "\"code\":\"node_cidrs_exceed_machines\""));
    podnet_plan_result_free(plan);
    /* the input is only read: planning again gives the same */
    plan = NULL;
    CHECK_OK(podnet_plan(in, &plan, &err));
    CHECK_INT(podnet_plan_result_get_info(plan)->pod_capacity, 62230);
    podnet_plan_result_free(plan);
    podnet_plan_input_free(in);

    /* IPv6: counts beyond 64 bits saturate; the JSON keeps the exact value. Default masks. */
    plan = plan_of((struct plan_case){.clusters = {"fd00:10::/48"}, .service = "fd00:96::/100"});
    CHECK_INT(podnet_plan_result_get_info(plan)->nodes, 65536);
    CHECK_INT(podnet_plan_result_get_info(plan)->workers, 65536);
    CHECK(podnet_plan_result_get_info(plan)->pods_per_node == UINT64_MAX); /* 2^64 - 1 exactly */
    CHECK(podnet_plan_result_get_info(plan)->pod_capacity == UINT64_MAX); /* 2^80 - 2^16: saturated */
    CHECK(contains(podnet_plan_result_get_info(plan)->json, "\"pod_capacity\":1208925819614629174640640"));
    CHECK_INT(podnet_plan_result_get_info(plan)->services[0].service_ips, 1048575); /* capped at 2^20 - 1 */
    CHECK_INT(podnet_plan_result_get_info(plan)->warning_count, 1);
    CHECK_INT(podnet_plan_result_get_info(plan)->warnings[0].code, PODNET_PLAN_WARNING_SERVICE_RANGE_CAPPED);
    podnet_plan_result_free(plan);

    /* dual-stack with its warnings */
    plan = plan_of((struct plan_case){
        .clusters = {"10.10.0.0/16", "fd00:10::/56"}, .masks = {24, 64}, .control_plane = 300, .service = "10.96.0.0/12"});
    CHECK_INT(podnet_plan_result_get_info(plan)->nodes, 256);
    CHECK_INT(podnet_plan_result_get_info(plan)->workers, 0);
    CHECK_INT(podnet_plan_result_get_info(plan)->pods_per_node, 254); /* the smaller family */
    CHECK_INT(podnet_plan_result_get_info(plan)->pod_capacity, 0);
    CHECK_INT(podnet_plan_result_get_info(plan)->services[0].service_ips, 1048574);
    CHECK_INT(podnet_plan_result_get_info(plan)->warning_count, 1);
    CHECK_INT(podnet_plan_result_get_info(plan)->warnings[0].code, PODNET_PLAN_WARNING_CONTROL_PLANE_EXCEEDS_NODES);
    podnet_plan_result_free(plan);
}

static podnet_string_list *allocate(podnet_node_cidr_allocator *a) {
    podnet_string_list *l = NULL;
    CHECK_OK(podnet_node_cidr_allocator_allocate(a, &l, &err));
    return l;
}

void test_node_cidr_allocator(void) {
    const char *clusters[] = {"10.10.0.0/16"};
    const char *services[] = {"10.0.0.0/16"};
    const char *occupy[] = {"10.10.5.0/24"};
    const char *second[] = {"10.10.1.0/24"};
    const uint8_t masks[] = {24};
    const char *ds_clusters[] = {"10.10.0.0/16", "fd00:10::/56"};
    const uint8_t ds_masks[] = {24, 64};
    podnet_node_cidr_allocator *a = NULL, *b = NULL, *ds = NULL, *small = NULL;
    podnet_string_list *l, *la, *lb;
    podnet_bytes *bytes = NULL;
    size_t released = 99;
    bool allocated = false;

    CHECK_OK(podnet_node_cidr_allocator_new(clusters, 1, masks, 1, services, 1, &a, &err));
    CHECK_INT(podnet_node_cidr_allocator_capacity(a), 256);
    CHECK_INT(podnet_node_cidr_allocator_available(a), 256);
    l = allocate(a);
    CHECK_INT(l->count, 1);
    CHECK_STR(l->items[0], "10.10.0.0/24");
    podnet_string_list_free(l);
    l = allocate(a);
    CHECK_STR(l->items[0], "10.10.1.0/24");
    podnet_string_list_free(l);
    CHECK_OK(podnet_node_cidr_allocator_occupy(a, occupy, 1, &err));
    REFUSED(PODNET_STATUS_ALREADY_EXISTS, NULL, podnet_node_cidr_allocator_occupy(a, occupy, 1, &err));
    CHECK_OK(podnet_node_cidr_allocator_is_allocated(a, "10.10.5.0/24", &allocated, &err));
    CHECK(allocated);
    CHECK_OK(podnet_node_cidr_allocator_is_allocated(a, "10.10.9.0/24", &allocated, &err));
    CHECK(!allocated);
    CHECK_INT(podnet_node_cidr_allocator_available(a), 253);
    CHECK_OK(podnet_node_cidr_allocator_release(a, second, 1, &released, &err));
    CHECK_INT(released, 1);
    CHECK_OK(podnet_node_cidr_allocator_release(a, second, 1, &released, &err)); /* retry: fine */
    CHECK_INT(released, 0);
    CHECK_OK(podnet_node_cidr_allocator_release(a, NULL, 0, &released, &err));
    CHECK_INT(released, 0);

    /* round trip through bytes: allocations and the round-robin position survive */
    CHECK_OK(podnet_node_cidr_allocator_to_bytes(a, &bytes, &err));
    CHECK(podnet_bytes_len(bytes) > 16 && podnet_bytes_data(bytes) != NULL);
    CHECK(memcmp(podnet_bytes_data(bytes), "PNNC", 4) == 0);
    CHECK_OK(podnet_node_cidr_allocator_from_bytes(podnet_bytes_data(bytes), podnet_bytes_len(bytes), &b, &err));
    podnet_bytes_free(bytes);
    CHECK_INT(podnet_node_cidr_allocator_available(b), 254);
    CHECK_OK(podnet_node_cidr_allocator_is_allocated(b, "10.10.5.0/24", &allocated, &err));
    CHECK(allocated);
    CHECK_OK(podnet_node_cidr_allocator_is_allocated(b, "10.10.1.0/24", &allocated, &err));
    CHECK(!allocated);
    la = allocate(a), lb = allocate(b);
    CHECK_STR(la->items[0], "10.10.2.0/24"); /* released 10.10.1.0 is not reused yet */
    CHECK_STR(lb->items[0], "10.10.2.0/24");
    podnet_string_list_free(la);
    podnet_string_list_free(lb);
    podnet_node_cidr_allocator_free(a);
    podnet_node_cidr_allocator_free(b);

    /* dual-stack: one CIDR per family, primary first; default masks when none are given */
    CHECK_OK(podnet_node_cidr_allocator_new(ds_clusters, 2, ds_masks, 2, NULL, 0, &ds, &err));
    l = allocate(ds);
    CHECK_INT(l->count, 2);
    CHECK_STR(l->items[0], "10.10.0.0/24");
    CHECK_STR(l->items[1], "fd00:10::/64");
    podnet_string_list_free(l);
    podnet_node_cidr_allocator_free(ds);
    ds = NULL;
    CHECK_OK(podnet_node_cidr_allocator_new(ds_clusters, 2, NULL, 0, NULL, 0, &ds, &err));
    CHECK_INT(podnet_node_cidr_allocator_capacity(ds), 256); /* min(256 /24s, 256 /64s) */
    podnet_node_cidr_allocator_free(ds);

    /* exhaustion: all or nothing */
    {
        const char *tiny[] = {"10.20.0.0/23"};
        podnet_string_list *none = NULL;
        CHECK_OK(podnet_node_cidr_allocator_new(tiny, 1, NULL, 0, NULL, 0, &small, &err));
        podnet_string_list_free(allocate(small));
        podnet_string_list_free(allocate(small));
        CHECK_INT(podnet_node_cidr_allocator_available(small), 0);
        REFUSED(PODNET_STATUS_EXHAUSTED, NULL, podnet_node_cidr_allocator_allocate(small, &none, &err));
        CHECK(none == NULL);
        podnet_node_cidr_allocator_free(small);
    }
}

void test_service_ip_allocator(void) {
    podnet_service_ip_allocator *a = NULL, *b = NULL, *tiny = NULL, *v6 = NULL;
    podnet_bytes *bytes = NULL;
    char ip[PODNET_IP_STR_LEN], dyn[PODNET_IP_STR_LEN];
    bool yes = false;

    CHECK_OK(podnet_service_ip_allocator_new("10.0.0.0/16", &a, &err));
    CHECK_STR(podnet_service_ip_allocator_cidr(a), "10.0.0.0/16");
    CHECK_INT(podnet_service_ip_allocator_size(a), 65534);
    CHECK_INT(podnet_service_ip_allocator_allocated(a), 0);
    CHECK_INT(podnet_service_ip_allocator_available(a), 65534);
    CHECK_OK(podnet_service_ip_allocator_allocate(a, "10.0.0.10", &err));
    REFUSED(PODNET_STATUS_ALREADY_EXISTS, NULL, podnet_service_ip_allocator_allocate(a, "10.0.0.10", &err));
    memset(ip, 'x', sizeof ip);
    CHECK_OK(podnet_service_ip_allocator_allocate_next(a, ip, sizeof ip, &err));
    CHECK(memchr(ip, '\0', sizeof ip) != NULL);
    CHECK(starts_with(ip, "10.0."));
    CHECK(strcmp(ip, "10.0.0.1") != 0 && strcmp(ip, "10.0.0.10") != 0); /* never the API server's */
    snprintf(dyn, sizeof dyn, "%s", ip);
    CHECK_OK(podnet_service_ip_allocator_is_allocated(a, dyn, &yes, &err));
    CHECK(yes);
    CHECK_OK(podnet_service_ip_allocator_is_allocated(a, "10.0.0.1", &yes, &err));
    CHECK(!yes);
    CHECK_INT(podnet_service_ip_allocator_allocated(a), 2);

    /* round trip through bytes */
    CHECK_OK(podnet_service_ip_allocator_to_bytes(a, &bytes, &err));
    CHECK(podnet_bytes_len(bytes) > 8192); /* the /16's bitmap */
    CHECK_OK(podnet_service_ip_allocator_from_bytes(podnet_bytes_data(bytes), podnet_bytes_len(bytes), &b, &err));
    podnet_bytes_free(bytes);
    CHECK_STR(podnet_service_ip_allocator_cidr(b), "10.0.0.0/16");
    CHECK_INT(podnet_service_ip_allocator_allocated(b), 2);
    CHECK_OK(podnet_service_ip_allocator_is_allocated(b, "10.0.0.10", &yes, &err));
    CHECK(yes);
    CHECK_OK(podnet_service_ip_allocator_is_allocated(b, dyn, &yes, &err));
    CHECK(yes);
    podnet_service_ip_allocator_free(b);

    /* release: true once, then false */
    CHECK_OK(podnet_service_ip_allocator_release(a, "10.0.0.10", &yes, &err));
    CHECK(yes);
    CHECK_OK(podnet_service_ip_allocator_release(a, "10.0.0.10", &yes, &err));
    CHECK(!yes);

    /* resize: the end grows; the start never moves; shrinking never orphans */
    CHECK_OK(podnet_service_ip_allocator_resize(a, "10.0.0.0/15", &err));
    CHECK_STR(podnet_service_ip_allocator_cidr(a), "10.0.0.0/15");
    CHECK_INT(podnet_service_ip_allocator_size(a), 131070);
    CHECK_OK(podnet_service_ip_allocator_is_allocated(a, dyn, &yes, &err));
    CHECK(yes);
    REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_service_ip_allocator_resize(a, "10.1.0.0/16", &err));
    REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_service_ip_allocator_resize(a, "10.0.0.0/24", &err));
    CHECK_STR(podnet_service_ip_allocator_cidr(a), "10.0.0.0/15");
    CHECK_OK(podnet_service_ip_allocator_release(a, dyn, &yes, &err));
    CHECK(yes);
    CHECK_OK(podnet_service_ip_allocator_resize(a, "10.0.0.0/24", &err));
    CHECK_INT(podnet_service_ip_allocator_size(a), 254);
    CHECK_INT(podnet_service_ip_allocator_allocated(a), 0);
    podnet_service_ip_allocator_free(a);

    /* a /30 has two addresses; the API server's is never handed out dynamically */
    CHECK_OK(podnet_service_ip_allocator_new("10.0.0.0/30", &tiny, &err));
    CHECK_INT(podnet_service_ip_allocator_size(tiny), 2);
    CHECK_OK(podnet_service_ip_allocator_allocate_next(tiny, ip, sizeof ip, &err));
    CHECK_STR(ip, "10.0.0.2");
    memset(ip, 'x', sizeof ip);
    REFUSED(PODNET_STATUS_EXHAUSTED, NULL, podnet_service_ip_allocator_allocate_next(tiny, ip, sizeof ip, &err));
    CHECK(ip[0] == 'x' && ip[PODNET_IP_STR_LEN - 1] == 'x'); /* untouched on failure */
    CHECK_OK(podnet_service_ip_allocator_allocate(tiny, "10.0.0.1", &err)); /* asked for: fine */
    CHECK_INT(podnet_service_ip_allocator_available(tiny), 0);
    podnet_service_ip_allocator_free(tiny);

    /* IPv6: at most 2^20 - 1 addresses */
    CHECK_OK(podnet_service_ip_allocator_new("fd00:96::/108", &v6, &err));
    CHECK_INT(podnet_service_ip_allocator_size(v6), 1048575);
    CHECK_OK(podnet_service_ip_allocator_allocate_next(v6, ip, sizeof ip, &err));
    CHECK(starts_with(ip, "fd00:96::"));
    CHECK_OK(podnet_service_ip_allocator_allocate(v6, "fd00:96::a", &err));
    CHECK_INT(podnet_service_ip_allocator_allocated(v6), 2);
    podnet_service_ip_allocator_free(v6);
}

/* Every pointer argument NULL, non-UTF-8 strings, malformed CIDRs and addresses, impossible
 * sizes: refused with its own status, nothing written, the object unchanged. */
void test_bad_input_cluster(void) {
    char long_cidr[100];
    podnet_plan_input *in = NULL, *in_sent = SENT, *empty = NULL;
    podnet_plan_result *plan = SENT;
    podnet_node_cidr_allocator *na = NULL, *na_sent = SENT;
    podnet_service_ip_allocator *sa = NULL, *sa_sent = SENT;
    podnet_string_list *strs = SENT;
    podnet_bytes *bytes = SENT, *good = NULL;
    size_t released = 77;
    bool flag = true;
    char ip[PODNET_IP_STR_LEN] = "untouched";
    uint8_t garbage[64];
    uint8_t *copy;
    size_t n;
    const char *c1[] = {"10.10.0.0/16"}, *c_null[] = {NULL}, *c_utf[] = {NOT_UTF8}, *c_addr[] = {"10.10.0.0"},
               *c_host[] = {"10.10.0.1/16"}, *c_two_v4[] = {"10.10.0.0/16", "10.11.0.0/16"},
               *c_three[] = {"10.10.0.0/16", "fd00::/56", "10.12.0.0/16"}, *s_over[] = {"10.10.128.0/17"},
               *c_wide[] = {"16.0.0.0/4"}, *o_wrong_size[] = {"10.10.0.0/25"}, *o_outside[] = {"10.11.0.0/24"},
               *o_v6[] = {"fd00::/64"}, *o_two[] = {"10.10.3.0/24", "10.10.4.0/24"}, *long_list[] = {long_cidr};
    const uint8_t m24[] = {24}, m8[] = {8}, m30[] = {30}, m2[] = {24, 64};

    memset(long_cidr, '1', sizeof long_cidr - 1);
    long_cidr[sizeof long_cidr - 1] = '\0';
    memset(garbage, 0xab, sizeof garbage);

    /* plan input */
    REFUSED_CALL(NUL, podnet_plan_input_new, NULL, &err);
    CHECK_OK(podnet_plan_input_new(&in, &err));
    REFUSED_STRING(podnet_plan_input_add_cluster_cidr, in, "10.10.0.0/16", long_cidr);
    REFUSED_CIDR(podnet_plan_input_add_cluster_cidr, in);
    REFUSED_CALL(ARG, podnet_plan_input_add_cluster_cidr, in, "10.10.0.1/16", &err);
    REFUSED_CALL(ARG, podnet_plan_input_add_cluster_cidr, in, "::ffff:10.0.0.0/112", &err);
    CHECK_OK(podnet_plan_input_add_cluster_cidr(in, "10.10.0.0/16", &err));
    REFUSED_CALL(ARG, podnet_plan_input_add_cluster_cidr, in, "10.11.0.0/16", &err);
    REFUSED_CALL(NUL, podnet_plan_input_add_node_mask, NULL, 24, &err);
    REFUSED_CALL(ARG, podnet_plan_input_add_node_mask, in, 129, &err);
    REFUSED_STRING(podnet_plan_input_set_machine_subnet, in, "10.1.0.0/24", NULL);
    REFUSED_CIDR(podnet_plan_input_set_machine_subnet, in);
    REFUSED_CALL(ARG, podnet_plan_input_set_machine_subnet, in, "10.1.0.9/24", &err);
    REFUSED_CALL(NUL, podnet_plan_input_set_control_plane, NULL, 3, &err);
    REFUSED_STRING(podnet_plan_input_add_service_cidr, in, "10.0.0.0/16", NULL);
    REFUSED_CIDR(podnet_plan_input_add_service_cidr, in);
    REFUSED_CALL(ARG, podnet_plan_input_add_service_cidr, in, "10.0.0.1/16", &err);
    CHECK_OK(podnet_plan_input_add_service_cidr(in, "10.0.0.0/16", &err));
    REFUSED_CALL(ARG, podnet_plan_input_add_service_cidr, in, "10.1.0.0/16", &err);
    /* podnet_plan */
    REFUSED_CALL(NUL, podnet_plan, NULL, &plan, &err);
    REFUSED_CALL(NUL, podnet_plan, in, NULL, &err);
    CHECK_OK(podnet_plan_input_new(&empty, &err));
    REFUSED(ARG, NULL, podnet_plan(empty, &plan, &err)); /* no cluster CIDR */
    CHECK_OK(podnet_plan_input_add_cluster_cidr(empty, "10.10.0.0/16", &err));
    CHECK_OK(podnet_plan_input_add_service_cidr(empty, "10.10.96.0/20", &err));
    REFUSED(ARG, NULL, podnet_plan(empty, &plan, &err)); /* service range inside the cluster CIDR */
    podnet_plan_input_free(empty);
    CHECK_OK(podnet_plan_input_add_node_mask(in, 24, &err));
    CHECK_OK(podnet_plan_input_add_node_mask(in, 25, &err));
    REFUSED_CALL(ARG, podnet_plan_input_add_node_mask, in, 26, &err);
    REFUSED(ARG, NULL, podnet_plan(in, &plan, &err)); /* two masks for one cluster CIDR */
    CHECK(plan == SENT);
    podnet_plan_input_free(in);
    CHECK(in_sent == SENT);
    podnet_plan_input_free(NULL);

    /* node CIDR allocator */
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_new, NULL, 1, m24, 1, NULL, 0, &na_sent, &err);
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_new, c_null, 1, m24, 1, NULL, 0, &na_sent, &err);
    REFUSED_CALL(UTF, podnet_node_cidr_allocator_new, c_utf, 1, m24, 1, NULL, 0, &na_sent, &err);
    REFUSED_CALL(LONG, podnet_node_cidr_allocator_new, long_list, 1, m24, 1, NULL, 0, &na_sent, &err);
    REFUSED_CALL(ADDR, podnet_node_cidr_allocator_new, c_addr, 1, m24, 1, NULL, 0, &na_sent, &err);
    REFUSED_CALL(ARG, podnet_node_cidr_allocator_new, c_host, 1, m24, 1, NULL, 0, &na_sent, &err);
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_new, c1, 1, NULL, 1, NULL, 0, &na_sent, &err);
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_new, c1, 1, m24, 1, NULL, 1, &na_sent, &err);
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_new, c1, 1, m24, 1, c_null, 1, &na_sent, &err);
    REFUSED_CALL(UTF, podnet_node_cidr_allocator_new, c1, 1, m24, 1, c_utf, 1, &na_sent, &err);
    REFUSED_CALL(ADDR, podnet_node_cidr_allocator_new, c1, 1, m24, 1, c_addr, 1, &na_sent, &err);
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_new, c1, 1, m24, 1, NULL, 0, NULL, &err);
    REFUSED_CALL(ARG, podnet_node_cidr_allocator_new, c1, (size_t)-1, m24, 1, NULL, 0, &na_sent, &err);
    REFUSED_CALL(ARG, podnet_node_cidr_allocator_new, c1, 1, m2, 2, NULL, 0, &na_sent, &err);
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_new(NULL, 0, NULL, 0, NULL, 0, &na_sent, &err));
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_new(c_two_v4, 2, NULL, 0, NULL, 0, &na_sent, &err));
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_new(c_three, 3, NULL, 0, NULL, 0, &na_sent, &err));
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_new(c1, 1, m8, 1, NULL, 0, &na_sent, &err));   /* shorter than /16 */
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_new(c_wide, 1, m30, 1, NULL, 0, &na_sent, &err)); /* 26 bits */
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_new(c1, 1, m24, 1, s_over, 1, &na_sent, &err)); /* overlap */
    CHECK(na_sent == SENT);
    CHECK_OK(podnet_node_cidr_allocator_new(c1, 1, m24, 1, NULL, 0, &na, &err));
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_allocate, NULL, &strs, &err);
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_allocate, na, NULL, &err);
    REFUSED_STRINGS(podnet_node_cidr_allocator_occupy, na, c1, c_null, c_utf, 1, &err);
    REFUSED_CALL(ADDR, podnet_node_cidr_allocator_occupy, na, c_addr, 1, &err);
    REFUSED_CALL(ARG, podnet_node_cidr_allocator_occupy, na, c_host, 1, &err);
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_occupy(na, NULL, 0, &err));       /* nothing given */
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_occupy(na, o_wrong_size, 1, &err));
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_occupy(na, o_outside, 1, &err));
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_occupy(na, o_v6, 1, &err));       /* no IPv6 range */
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_occupy(na, o_two, 2, &err));      /* two IPv4 */
    REFUSED_STRINGS(podnet_node_cidr_allocator_release, na, c1, c_null, c_utf, 1, &released, &err);
    REFUSED_CALL(ADDR, podnet_node_cidr_allocator_release, na, c_addr, 1, &released, &err);
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_release, na, o_outside, 1, NULL, &err);
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_release(na, o_outside, 1, &released, &err));
    REFUSED_ADDR_QUERY(podnet_node_cidr_allocator_is_allocated, na, "10.10.0.0/24", &flag, NOT_UTF8, "10.10.0.0/");
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_is_allocated(na, "10.10.0.0/23", &flag, &err));
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_to_bytes, NULL, &bytes, &err);
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_to_bytes, na, NULL, &err);
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_from_bytes, NULL, 10, &na_sent, &err);
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_from_bytes(NULL, 0, &na_sent, &err));
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_from_bytes(garbage, sizeof garbage, &na_sent, &err));
    CHECK_OK(podnet_node_cidr_allocator_to_bytes(na, &good, &err));
    n = podnet_bytes_len(good);
    REFUSED_CALL(NUL, podnet_node_cidr_allocator_from_bytes, podnet_bytes_data(good), n, NULL, &err);
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_from_bytes(podnet_bytes_data(good), n - 1, &na_sent, &err)); /* truncated */
    copy = malloc(n);
    CHECK(copy != NULL);
    if (copy) {
        memcpy(copy, podnet_bytes_data(good), n);
        copy[n / 2] ^= 0x01; /* one flipped bit: the CRC catches it */
        REFUSED(ARG, NULL, podnet_node_cidr_allocator_from_bytes(copy, n, &na_sent, &err));
        free(copy);
    }
    /* a service allocator's bytes are not a node CIDR allocator's */
    CHECK_OK(podnet_service_ip_allocator_new("10.0.0.0/24", &sa, &err));
    podnet_bytes_free(good);
    good = NULL;
    CHECK_OK(podnet_service_ip_allocator_to_bytes(sa, &good, &err));
    REFUSED(ARG, NULL, podnet_node_cidr_allocator_from_bytes(podnet_bytes_data(good), podnet_bytes_len(good), &na_sent, &err));
    CHECK(na_sent == SENT && strs == SENT && bytes == SENT && released == 77 && flag);
    CHECK_INT(podnet_node_cidr_allocator_available(na), 256); /* nothing changed */
    podnet_node_cidr_allocator_free(na);
    podnet_node_cidr_allocator_free(NULL);

    /* service IP allocator */
    REFUSED_CALL(NUL, podnet_service_ip_allocator_new, NULL, &sa_sent, &err);
    REFUSED_CALL(NUL, podnet_service_ip_allocator_new, "10.0.0.0/16", NULL, &err);
    REFUSED_CALL(UTF, podnet_service_ip_allocator_new, NOT_UTF8, &sa_sent, &err);
    REFUSED_CALL(ADDR, podnet_service_ip_allocator_new, "10.0.0.0/z", &sa_sent, &err);
    REFUSED_CALL(ARG, podnet_service_ip_allocator_new, "10.0.0.1/16", &sa_sent, &err);
    REFUSED(ARG, NULL, podnet_service_ip_allocator_new("10.0.0.0/8", &sa_sent, &err));  /* larger than /12 */
    REFUSED(ARG, NULL, podnet_service_ip_allocator_new("10.0.0.0/31", &sa_sent, &err)); /* no address */
    REFUSED(ARG, NULL, podnet_service_ip_allocator_new("fd00::/128", &sa_sent, &err));
    CHECK(sa_sent == SENT);
    CHECK_OK(podnet_service_ip_allocator_allocate(sa, "10.0.0.7", &err));
    REFUSED_STRING(podnet_service_ip_allocator_allocate, sa, "10.0.0.8", NULL);
    REFUSED_CALL(ADDR, podnet_service_ip_allocator_allocate, sa, "10.0.0.256", &err);
    REFUSED_CALL(ADDR, podnet_service_ip_allocator_allocate, sa, "10.0.0.8/32", &err);
    REFUSED(ARG, NULL, podnet_service_ip_allocator_allocate(sa, "10.0.1.8", &err));   /* outside */
    REFUSED(ARG, NULL, podnet_service_ip_allocator_allocate(sa, "10.0.0.0", &err));   /* network address */
    REFUSED(ARG, NULL, podnet_service_ip_allocator_allocate(sa, "10.0.0.255", &err)); /* broadcast */
    REFUSED(ARG, NULL, podnet_service_ip_allocator_allocate(sa, "fd00::8", &err));    /* family */
    REFUSED_CALL(NUL, podnet_service_ip_allocator_allocate_next, NULL, ip, sizeof ip, &err);
    REFUSED_CALL(NUL, podnet_service_ip_allocator_allocate_next, sa, NULL, sizeof ip, &err);
    REFUSED_CALL(ARG, podnet_service_ip_allocator_allocate_next, sa, ip, PODNET_IP_STR_LEN - 1, &err);
    REFUSED_CALL(ARG, podnet_service_ip_allocator_allocate_next, sa, ip, 0, &err);
    CHECK_STR(ip, "untouched");
    REFUSED_ADDR_QUERY(podnet_service_ip_allocator_release, sa, "10.0.0.7", &flag, NOT_UTF8, "10.0.0");
    REFUSED(ARG, NULL, podnet_service_ip_allocator_release(sa, "10.9.0.7", &flag, &err));
    REFUSED_ADDR_QUERY(podnet_service_ip_allocator_is_allocated, sa, "10.0.0.7", &flag, NOT_UTF8, "x");
    REFUSED_STRING(podnet_service_ip_allocator_resize, sa, "10.0.0.0/23", NULL);
    REFUSED_CIDR(podnet_service_ip_allocator_resize, sa);
    REFUSED_CALL(ARG, podnet_service_ip_allocator_resize, sa, "10.0.0.1/23", &err);
    REFUSED(ARG, NULL, podnet_service_ip_allocator_resize(sa, "fd00::/64", &err));
    REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_service_ip_allocator_resize(sa, "10.0.2.0/24", &err));
    REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_service_ip_allocator_resize(sa, "10.0.0.0/30", &err)); /* orphans .7 */
    REFUSED_CALL(NUL, podnet_service_ip_allocator_to_bytes, NULL, &bytes, &err);
    REFUSED_CALL(NUL, podnet_service_ip_allocator_to_bytes, sa, NULL, &err);
    REFUSED_CALL(NUL, podnet_service_ip_allocator_from_bytes, NULL, 5, &sa_sent, &err);
    REFUSED_CALL(NUL, podnet_service_ip_allocator_from_bytes, podnet_bytes_data(good), podnet_bytes_len(good), NULL, &err);
    REFUSED(ARG, NULL, podnet_service_ip_allocator_from_bytes(garbage, sizeof garbage, &sa_sent, &err));
    REFUSED(ARG, NULL, podnet_service_ip_allocator_from_bytes(podnet_bytes_data(good), podnet_bytes_len(good) - 4, &sa_sent, &err));
    CHECK(sa_sent == SENT && bytes == SENT && flag);
    CHECK_STR(podnet_service_ip_allocator_cidr(sa), "10.0.0.0/24");
    CHECK_INT(podnet_service_ip_allocator_allocated(sa), 1);
    podnet_bytes_free(good);
    podnet_service_ip_allocator_free(sa);
    podnet_service_ip_allocator_free(NULL);

    /* accessors on NULL */
    CHECK(podnet_plan_result_get_info(NULL) == NULL);
    CHECK_INT(podnet_node_cidr_allocator_capacity(NULL), 0);
    CHECK_INT(podnet_node_cidr_allocator_available(NULL), 0);
    CHECK(podnet_service_ip_allocator_cidr(NULL) == NULL);
    CHECK_INT(podnet_service_ip_allocator_size(NULL), 0);
    CHECK_INT(podnet_service_ip_allocator_allocated(NULL), 0);
    CHECK_INT(podnet_service_ip_allocator_available(NULL), 0);
    CHECK(podnet_bytes_data(NULL) == NULL);
    CHECK_INT(podnet_bytes_len(NULL), 0);
    podnet_plan_result_free(NULL);
    podnet_bytes_free(NULL);
    podnet_string_list_free(NULL);
}
