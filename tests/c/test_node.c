/*
 * C tests of libpodnet, part 2: a node in the test's own network namespace. Sandbox lifecycle,
 * idempotence, gc, the bad-input table for node calls, 8 threads sharing one node, the log
 * callback and the panic boundary.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static const char NOT_UTF8[] = "id\xc3\x28";

DEFINE_LIST_COUNT(list_count, podnet_sandbox_list, podnet_node_sandbox_list, podnet_sandbox_list_count, podnet_sandbox_list_free)

/* Deletes the test's last sandbox `id`: the node is left with none, as every test leaves it. */
static void delete_last(const char *id) {
    CHECK_OK(podnet_node_sandbox_delete(test_node, id, &err));
    CHECK_INT(list_count(test_node), 0);
}

podnet_sandbox *test_sandbox_create(const char *id) {
    podnet_sandbox_spec *spec = NULL;
    podnet_sandbox *sb = NULL;
    CHECK_OK(podnet_sandbox_spec_new(id, &spec, &err));
    CHECK_OK(podnet_node_sandbox_create(test_node, spec, &sb, &err));
    podnet_sandbox_spec_free(spec);
    return sb;
}

static int starts_with(const char *s, const char *prefix) {
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = s ? strlen(s) : 0, m = strlen(suffix);
    return s != NULL && n >= m && strcmp(s + n - m, suffix) == 0;
}

void test_node_lifecycle(void) {
    podnet_sandbox *a, *b = NULL, *got = NULL;
    podnet_sandbox_spec *spec = NULL;
    podnet_sandbox_list *list = NULL;
    podnet_check_report *report = NULL;
    char netns_a[256] = "";
    size_t i, found = 0;

    a = test_sandbox_create("life-1");
    CHECK(a != NULL);
    if (a == NULL) return;
    CHECK_STR(podnet_sandbox_get_info(a)->id, "life-1");
    CHECK_STR(podnet_sandbox_get_info(a)->ifname, "eth0");
    CHECK_STR(podnet_sandbox_get_info(a)->netns_path, "/run/netns/pn-ctest-life-1");
    CHECK(podnet_sandbox_get_info(a)->owns_netns);
    CHECK(starts_with(podnet_sandbox_get_info(a)->host_ifname, "pn") && strlen(podnet_sandbox_get_info(a)->host_ifname) == 14);
    CHECK(starts_with(podnet_sandbox_get_info(a)->mac, "0a:58:0a:58:00:") && strlen(podnet_sandbox_get_info(a)->mac) == 17);
    CHECK_INT(podnet_sandbox_get_info(a)->mode, PODNET_MODE_BRIDGE);
    CHECK_INT(podnet_sandbox_get_info(a)->ips.count, 1);
    CHECK(starts_with(podnet_sandbox_get_info(a)->ips.items[0], "10.88.0.") && ends_with(podnet_sandbox_get_info(a)->ips.items[0], "/24"));
    CHECK_INT(podnet_sandbox_get_info(a)->gateways.count, 1);
    CHECK_STR(podnet_sandbox_get_info(a)->gateways.items[0], "10.88.0.1");
    snprintf(netns_a, sizeof netns_a, "%s", podnet_sandbox_get_info(a)->netns_path);
    CHECK(access(netns_a, F_OK) == 0);

    /* get returns the record */
    CHECK_OK(podnet_node_sandbox_get(test_node, "life-1", &got, &err));
    CHECK_STR(podnet_sandbox_get_info(got)->ips.items[0], podnet_sandbox_get_info(a)->ips.items[0]);
    CHECK_STR(podnet_sandbox_get_info(got)->host_ifname, podnet_sandbox_get_info(a)->host_ifname);
    CHECK_STR(podnet_sandbox_get_info(got)->mac, podnet_sandbox_get_info(a)->mac);
    podnet_sandbox_free(got);

    /* a second pod with its own interface name and a requested address */
    CHECK_OK(podnet_sandbox_spec_new("life-2", &spec, &err));
    CHECK_OK(podnet_sandbox_spec_set_ifname(spec, "net1", &err));
    CHECK_OK(podnet_sandbox_spec_add_ip(spec, "10.88.0.200", &err));
    CHECK_OK(podnet_node_sandbox_create(test_node, spec, &b, &err));
    podnet_sandbox_spec_free(spec);
    CHECK_STR(podnet_sandbox_get_info(b)->ifname, "net1");
    CHECK_STR(podnet_sandbox_get_info(b)->ips.items[0], "10.88.0.200/24");

    /* list: sorted by id, elements borrowed */
    CHECK_OK(podnet_node_sandbox_list(test_node, &list, &err));
    CHECK_INT(podnet_sandbox_list_count(list), 2);
    for (i = 0; i < podnet_sandbox_list_count(list); i++) {
        const podnet_sandbox *s = podnet_sandbox_list_at(list, i);
        if (strcmp(podnet_sandbox_get_info(s)->id, "life-1") == 0) found |= 1;
        if (strcmp(podnet_sandbox_get_info(s)->id, "life-2") == 0) found |= 2;
    }
    CHECK_INT(found, 3);
    CHECK_STR(podnet_sandbox_get_info(podnet_sandbox_list_at(list, 0))->id, "life-1");
    CHECK(podnet_sandbox_list_at(list, 2) == NULL);
    podnet_sandbox_list_free(list);

    /* check: healthy */
    CHECK_OK(podnet_node_sandbox_check(test_node, "life-1", &report, &err));
    CHECK_STR(podnet_check_report_get_info(report)->id, "life-1");
    CHECK(podnet_check_report_get_info(report)->ok);
    CHECK_INT(podnet_check_report_get_info(report)->problems.count, 0);
    podnet_check_report_free(report);

    /* delete: gone, idempotent */
    CHECK_OK(podnet_node_sandbox_delete(test_node, "life-1", &err));
    CHECK_OK(podnet_node_sandbox_delete(test_node, "life-2", &err));
    CHECK_OK(podnet_node_sandbox_delete(test_node, "life-1", &err));
    got = NULL;
    REFUSED(PODNET_STATUS_NOT_FOUND, NULL, podnet_node_sandbox_get(test_node, "life-1", &got, &err));
    CHECK(got == NULL);
    CHECK(access(netns_a, F_OK) != 0);
    CHECK_INT(list_count(test_node), 0);
    /* the objects outlive the pods they describe */
    CHECK_STR(podnet_sandbox_get_info(a)->id, "life-1");
    podnet_sandbox_free(a);
    podnet_sandbox_free(b);
}

void test_idempotence(void) {
    podnet_sandbox *a = test_sandbox_create("same-1"), *again = test_sandbox_create("same-1"), *sb = NULL;
    podnet_sandbox_spec *spec = NULL;
    CHECK(a != NULL && again != NULL);
    CHECK_STR(podnet_sandbox_get_info(again)->ips.items[0], podnet_sandbox_get_info(a)->ips.items[0]);
    CHECK_STR(podnet_sandbox_get_info(again)->host_ifname, podnet_sandbox_get_info(a)->host_ifname);
    /* the same id with a different spec */
    CHECK_OK(podnet_sandbox_spec_new("same-1", &spec, &err));
    CHECK_OK(podnet_sandbox_spec_set_ifname(spec, "eth9", &err));
    REFUSED(PODNET_STATUS_ALREADY_EXISTS, NULL, podnet_node_sandbox_create(test_node, spec, &sb, &err));
    CHECK(sb == NULL);
    podnet_sandbox_spec_free(spec);
    CHECK_OK(podnet_node_sandbox_delete(test_node, "same-1", &err));
    CHECK_OK(podnet_node_sandbox_delete(test_node, "same-1", &err));
    CHECK_OK(podnet_node_sandbox_delete(test_node, "never-existed", &err));
    podnet_sandbox_free(a);
    podnet_sandbox_free(again);
    /* re-create right after delete (the kernel may still be destroying the old veth) */
    a = test_sandbox_create("same-1");
    CHECK(a != NULL);
    podnet_sandbox_free(a);
    delete_last("same-1");
}

/* Labels: kept with the sandbox, read back sorted by key as "key=value" (from get and list). */
void test_labels(void) {
    podnet_sandbox_spec *spec = NULL;
    podnet_sandbox *sb = NULL, *got = NULL;
    podnet_sandbox_list *list = NULL;
    const podnet_sandbox_info *info;
    char key[300];
    CHECK_OK(podnet_sandbox_spec_new("label-1", &spec, &err));
    CHECK_OK(podnet_sandbox_spec_set_label(spec, "k8s.pod.name", "web-0", &err));
    CHECK_OK(podnet_sandbox_spec_set_label(spec, "k8s.pod.namespace", "shop", &err));
    CHECK_OK(podnet_sandbox_spec_set_label(spec, "k8s.pod.name", "web-1", &err)); /* replaces */
    CHECK_OK(podnet_sandbox_spec_set_label(spec, "empty", "", &err));
    CHECK_OK(podnet_sandbox_spec_set_mac(spec, "02:AA:bb:cc:dd:01", &err));
    REFUSED_CALL(PODNET_STATUS_INVALID_ARGUMENT, podnet_sandbox_spec_set_label, spec, "a=b", "x", &err);
    REFUSED_CALL(PODNET_STATUS_INVALID_ARGUMENT, podnet_sandbox_spec_set_label, spec, "", "x", &err);
    REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, podnet_sandbox_spec_set_label, spec, "k", NULL, &err);
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    REFUSED_CALL(PODNET_STATUS_TOO_LONG, podnet_sandbox_spec_set_label, spec, key, "x", &err);
    CHECK_OK(podnet_node_sandbox_create(test_node, spec, &sb, &err));
    podnet_sandbox_spec_free(spec);
    info = podnet_sandbox_get_info(sb);
    CHECK(info != NULL && info->struct_size == sizeof(podnet_sandbox_info));
    CHECK_INT(info->labels.count, 3);
    CHECK_STR(info->mac, "02:aa:bb:cc:dd:01");
    CHECK_STR(info->labels.items[0], "empty=");
    CHECK_STR(info->labels.items[1], "k8s.pod.name=web-1");
    CHECK_STR(info->labels.items[2], "k8s.pod.namespace=shop");
    CHECK_OK(podnet_node_sandbox_get(test_node, "label-1", &got, &err));
    CHECK_INT(podnet_sandbox_get_info(got)->labels.count, 3);
    CHECK_STR(podnet_sandbox_get_info(got)->labels.items[1], "k8s.pod.name=web-1");
    CHECK_OK(podnet_node_sandbox_list(test_node, &list, &err));
    CHECK_STR(podnet_sandbox_get_info(podnet_sandbox_list_at(list, 0))->labels.items[2], "k8s.pod.namespace=shop");
    podnet_sandbox_list_free(list);
    podnet_sandbox_free(got);
    podnet_sandbox_free(sb);
    delete_last("label-1");
}

/* Host ports: the spec's mappings are read back from the sandbox. (A core without host-port
 * support refuses the spec with INVALID_ARGUMENT; then nothing may be left behind.) */
void test_ports(void) {
    podnet_sandbox_spec *spec = NULL;
    podnet_sandbox *sb = NULL, *got = NULL;
    podnet_status st;
    podnet_error *err = NULL;
    CHECK_OK(podnet_sandbox_spec_new("port-1", &spec, &err));
    CHECK_OK(podnet_sandbox_spec_add_port(spec, PODNET_PROTOCOL_TCP, NULL, 8080, 80, &err));
    CHECK_OK(podnet_sandbox_spec_add_port(spec, PODNET_PROTOCOL_UDP, "10.88.0.1", 5353, 53, &err));
    st = podnet_node_sandbox_create(test_node, spec, &sb, &err);
    podnet_sandbox_spec_free(spec);
    if (st == PODNET_STATUS_INVALID_ARGUMENT) {
        fprintf(stderr, "   (this core refuses host ports: %s)\n", podnet_error_message(err));
        podnet_error_free(err);
        CHECK(sb == NULL);
        CHECK(access("/run/netns/pn-ctest-port-1", F_OK) != 0);
        CHECK_INT(list_count(test_node), 0);
        return;
    }
    CHECK_INT(st, PODNET_STATUS_OK);
    podnet_error_free(err);
    CHECK_OK(podnet_node_sandbox_get(test_node, "port-1", &got, &err));
    CHECK_INT(podnet_sandbox_get_info(got)->port_count, 2);
    CHECK_INT(podnet_sandbox_get_info(got)->ports[0].protocol, PODNET_PROTOCOL_TCP);
    CHECK(podnet_sandbox_get_info(got)->ports[0].host_ip == NULL);
    CHECK_INT(podnet_sandbox_get_info(got)->ports[0].host_port, 8080);
    CHECK_INT(podnet_sandbox_get_info(got)->ports[0].container_port, 80);
    CHECK_INT(podnet_sandbox_get_info(got)->ports[1].protocol, PODNET_PROTOCOL_UDP);
    CHECK_STR(podnet_sandbox_get_info(got)->ports[1].host_ip, "10.88.0.1");
    CHECK_INT(podnet_sandbox_get_info(got)->ports[1].host_port, 5353);
    CHECK_INT(podnet_sandbox_get_info(got)->ports[1].container_port, 53);
    CHECK_INT(podnet_sandbox_get_info(sb)->port_count, 2);
    podnet_sandbox_free(sb);
    podnet_sandbox_free(got);
    delete_last("port-1");
}

void test_gc(void) {
    const char *live[] = {"gc-a"};
    podnet_gc_report *rep = NULL;
    podnet_sandbox *s;
    size_t i, seen = 0;
    s = test_sandbox_create("gc-a"), podnet_sandbox_free(s);
    s = test_sandbox_create("gc-b"), podnet_sandbox_free(s);
    s = test_sandbox_create("gc-c"), podnet_sandbox_free(s);
    CHECK_OK(podnet_node_gc(test_node, live, 1, &rep, &err));
    CHECK_INT(podnet_gc_report_get_info(rep)->sandboxes.count, 2);
    for (i = 0; i < podnet_gc_report_get_info(rep)->sandboxes.count; i++) {
        const char *id = podnet_gc_report_get_info(rep)->sandboxes.items[i];
        if (strcmp(id, "gc-b") == 0) seen |= 1;
        if (strcmp(id, "gc-c") == 0) seen |= 2;
    }
    CHECK_INT(seen, 3);
    CHECK_INT(podnet_gc_report_get_info(rep)->errors.count, 0);
    /* the deleted pods' addresses, released once their veths are gone (and earlier tests') */
    CHECK(podnet_gc_report_get_info(rep)->ips.count >= 2);
    CHECK_INT(podnet_gc_report_get_info(rep)->netns.count, 0);
    (void)podnet_gc_report_get_info(rep)->links.count; /* veths of just-deleted pods may still be dying */
    podnet_gc_report_free(rep);
    CHECK_INT(list_count(test_node), 1);
    /* no live ids: NULL with 0 is allowed, everything goes */
    rep = NULL;
    CHECK_OK(podnet_node_gc(test_node, NULL, 0, &rep, &err));
    CHECK_INT(podnet_gc_report_get_info(rep)->sandboxes.count, 1);
    CHECK_STR(podnet_gc_report_get_info(rep)->sandboxes.items[0], "gc-a");
    podnet_gc_report_free(rep);
    CHECK_INT(list_count(test_node), 0);
}

/* NULL for every pointer argument, bad strings, unknown ids: refused, nothing on the node
 * changes, out-parameters untouched. */
void test_bad_input_node(void) {
    podnet_sandbox *keep = test_sandbox_create("keep-1"), *sb = SENT;
    podnet_sandbox_spec *spec = NULL;
    podnet_sandbox_list *list = SENT;
    podnet_check_report *report = SENT;
    podnet_gc_report *gcrep = SENT;
    podnet_node *node = SENT;
    podnet_node_config *cfg = NULL;
    char long_id[200];
    const char *ids_null[] = {"keep-1", NULL};
    const char *ids_utf8[] = {"keep-1", NOT_UTF8};
    const char *ids_long[] = {long_id};
    const char *ids_bad[] = {"keep-1", "a/b"};
    size_t before;

    memset(long_id, 'i', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    CHECK(keep != NULL);
    before = list_count(test_node);
    CHECK_INT(before, 1);
    CHECK_OK(podnet_sandbox_spec_new("bad-1", &spec, &err));

    /* podnet_node_open */
    CHECK_OK(podnet_node_config_new("ctest", &cfg, &err));
    REFUSED_CALL(NUL, podnet_node_open, NULL, &node, &err);
    REFUSED_CALL(NUL, podnet_node_open, cfg, NULL, &err);
    REFUSED(ARG, NULL, podnet_node_open(cfg, &node, &err)); /* no pod CIDR */
    podnet_node_config_free(cfg);
    /* create */
    REFUSED_CALL(NUL, podnet_node_sandbox_create, NULL, spec, &sb, &err);
    REFUSED_CALL(NUL, podnet_node_sandbox_create, test_node, NULL, &sb, &err);
    REFUSED_CALL(NUL, podnet_node_sandbox_create, test_node, spec, NULL, &err);
    /* delete */
    REFUSED_STRING(podnet_node_sandbox_delete, test_node, "keep-1", long_id);
    REFUSED_CALL(ARG, podnet_node_sandbox_delete, test_node, "../keep-1", &err);
    /* get */
    REFUSED_CALL(NUL, podnet_node_sandbox_get, NULL, "keep-1", &sb, &err);
    REFUSED_CALL(NUL, podnet_node_sandbox_get, test_node, NULL, &sb, &err);
    REFUSED_CALL(NUL, podnet_node_sandbox_get, test_node, "keep-1", NULL, &err);
    REFUSED_CALL(UTF, podnet_node_sandbox_get, test_node, NOT_UTF8, &sb, &err);
    REFUSED_CALL(LONG, podnet_node_sandbox_get, test_node, long_id, &sb, &err);
    REFUSED(PODNET_STATUS_NOT_FOUND, NULL, podnet_node_sandbox_get(test_node, "nope", &sb, &err));
    /* list */
    REFUSED_CALL(NUL, podnet_node_sandbox_list, NULL, &list, &err);
    REFUSED_CALL(NUL, podnet_node_sandbox_list, test_node, NULL, &err);
    /* check */
    REFUSED_CALL(NUL, podnet_node_sandbox_check, NULL, "keep-1", &report, &err);
    REFUSED_CALL(NUL, podnet_node_sandbox_check, test_node, NULL, &report, &err);
    REFUSED_CALL(NUL, podnet_node_sandbox_check, test_node, "keep-1", NULL, &err);
    REFUSED_CALL(UTF, podnet_node_sandbox_check, test_node, NOT_UTF8, &report, &err);
    REFUSED(PODNET_STATUS_NOT_FOUND, NULL, podnet_node_sandbox_check(test_node, "nope", &report, &err));
    /* gc: every id is checked before anything is deleted */
    REFUSED_STRINGS(podnet_node_gc, test_node, ids_null, ids_null, ids_utf8, 2, &gcrep, &err);
    REFUSED_CALL(LONG, podnet_node_gc, test_node, ids_long, 1, &gcrep, &err);
    REFUSED_CALL(ARG, podnet_node_gc, test_node, ids_bad, 2, &gcrep, &err);
    REFUSED_CALL(NUL, podnet_node_gc, test_node, ids_null, 1, NULL, &err);
    REFUSED_CALL(ARG, podnet_node_gc, test_node, ids_null, (size_t)-1, &gcrep, &err);
    /* specs the node refuses */
    podnet_sandbox_spec_free(spec);
    spec = NULL;
    CHECK_OK(podnet_sandbox_spec_new("bad-2", &spec, &err));
    CHECK_OK(podnet_sandbox_spec_add_ip(spec, "10.99.0.5", &err)); /* outside the pod CIDR */
    REFUSED(ARG, NULL, podnet_node_sandbox_create(test_node, spec, &sb, &err));
    podnet_sandbox_spec_free(spec);
    spec = NULL;
    CHECK_OK(podnet_sandbox_spec_new("bad-3", &spec, &err));
    CHECK_OK(podnet_sandbox_spec_add_ip(spec, "fd00::5", &err)); /* no IPv6 pod CIDR */
    REFUSED(ARG, NULL, podnet_node_sandbox_create(test_node, spec, &sb, &err));
    podnet_sandbox_spec_free(spec);
    spec = NULL;
    CHECK_OK(podnet_sandbox_spec_new("bad-4", &spec, &err));
    CHECK_OK(podnet_sandbox_spec_add_ip(spec, "10.88.0.1", &err));
    REFUSED(ARG, NULL, podnet_node_sandbox_create(test_node, spec, &sb, &err)); /* the gateway */
    podnet_sandbox_spec_free(spec);
    spec = NULL;
    /* an unknown sandbox: delete is success */
    CHECK_OK(podnet_node_sandbox_delete(test_node, "never-created", &err));

    /* out-parameters untouched, node unchanged */
    CHECK(sb == SENT && list == SENT && report == SENT && gcrep == SENT && node == SENT);
    CHECK_INT(list_count(test_node), before);
    sb = NULL;
    CHECK_OK(podnet_node_sandbox_get(test_node, "keep-1", &sb, &err));
    CHECK_STR(podnet_sandbox_get_info(sb)->ips.items[0], podnet_sandbox_get_info(keep)->ips.items[0]);
    podnet_sandbox_free(sb);
    report = NULL;
    CHECK_OK(podnet_node_sandbox_check(test_node, "keep-1", &report, &err));
    CHECK(podnet_check_report_get_info(report)->ok);
    podnet_check_report_free(report);
    CHECK(access("/run/netns/pn-ctest-bad-2", F_OK) != 0);
    CHECK_OK(podnet_node_sandbox_delete(test_node, "keep-1", &err));
    podnet_sandbox_free(keep);
}

/* 8 threads share the node: each creates 20 sandboxes, then each deletes its own. */
#define THREADS 8
#define PER_THREAD 20

/* One thread's share: the sandboxes conc-<index>-<i>, created (or, once `deleting`, deleted). */
struct worker {
    int index;
    int deleting;
    int failures;
    char ips[PER_THREAD][64];
};

/* Creates sandbox `id` with the default spec and copies its first address to ip. */
static podnet_status create_one(const char *id, char *ip, size_t ip_size, podnet_error **err) {
    podnet_sandbox_spec *spec = NULL;
    podnet_sandbox *sb = NULL;
    podnet_status st = podnet_sandbox_spec_new(id, &spec, err);
    if (st == PODNET_STATUS_OK) st = podnet_node_sandbox_create(test_node, spec, &sb, err);
    if (st == PODNET_STATUS_OK) snprintf(ip, ip_size, "%s", podnet_sandbox_get_info(sb)->ips.items[0]);
    podnet_sandbox_free(sb);
    podnet_sandbox_spec_free(spec);
    return st;
}

static void *worker_run(void *arg) {
    struct worker *w = arg;
    int i;
    for (i = 0; i < PER_THREAD; i++) {
        char id[64];
        podnet_error *err = NULL;
        podnet_status st;
        snprintf(id, sizeof id, "conc-%d-%d", w->index, i);
        st = w->deleting ? podnet_node_sandbox_delete(test_node, id, &err)
                         : create_one(id, w->ips[i], sizeof w->ips[i], &err);
        if (st != PODNET_STATUS_OK) {
            fprintf(stderr, "  %s %s: %s\n", w->deleting ? "delete" : "create", id, podnet_error_message(err));
            w->failures++;
        }
        podnet_error_free(err);
    }
    return NULL;
}

void test_concurrency(void) {
    static struct worker w[THREADS];
    pthread_t t[THREADS];
    int i, j, k, l, dup = 0;
    for (i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].index = i;
        CHECK_INT(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (i = 0; i < THREADS; i++) CHECK_INT(w[i].failures, 0);
    CHECK_INT(list_count(test_node), THREADS * PER_THREAD);
    /* every address distinct */
    for (i = 0; i < THREADS; i++)
        for (j = 0; j < PER_THREAD; j++)
            for (k = i; k < THREADS; k++)
                for (l = (k == i ? j + 1 : 0); l < PER_THREAD; l++)
                    if (w[i].ips[j][0] != '\0' && strcmp(w[i].ips[j], w[k].ips[l]) == 0) dup++;
    CHECK_INT(dup, 0);
    for (i = 0; i < THREADS; i++) {
        w[i].deleting = 1;
        CHECK_INT(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (i = 0; i < THREADS; i++) CHECK_INT(w[i].failures, 0);
    CHECK_INT(list_count(test_node), 0);
}

struct log_sink {
    pthread_mutex_t mu;
    int records;
    int saw_debug_with_span;
    int saw_warn_rollback;
    int bad_target;
};

static void collect(void *user_data, podnet_log_level level, const char *target, const char *message) {
    struct log_sink *s = user_data;
    pthread_mutex_lock(&s->mu);
    s->records++;
    if (strncmp(target, "podnet", 6) != 0) s->bad_target++;
    if (level == PODNET_LOG_LEVEL_DEBUG && strstr(message, "create_sandbox{") &&
        strstr(message, "id=log-1") && strstr(message, "same spec"))
        s->saw_debug_with_span++;
    if (level == PODNET_LOG_LEVEL_WARN && strstr(message, "id=log-2") && strstr(message, "rolling back"))
        s->saw_warn_rollback++;
    pthread_mutex_unlock(&s->mu);
}

void test_log_callback(void) {
    static struct log_sink sink = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};
    podnet_sandbox *a, *b, *sb = NULL;
    podnet_sandbox_spec *spec = NULL;
    char taken[64] = "";
    int after_off;
    CHECK_OK(podnet_set_log_callback(PODNET_LOG_LEVEL_DEBUG, collect, &sink, &err));
    a = test_sandbox_create("log-1");
    b = test_sandbox_create("log-1"); /* same spec again: a debug record inside the create span */
    /* ask for log-1's address: the reservation is refused before any kernel step, so there
     * is nothing to roll back and no rollback warning */
    snprintf(taken, sizeof taken, "%s", podnet_sandbox_get_info(a)->ips.items[0]);
    if (strchr(taken, '/')) *strchr(taken, '/') = '\0';
    CHECK_OK(podnet_sandbox_spec_new("log-2", &spec, &err));
    CHECK_OK(podnet_sandbox_spec_add_ip(spec, taken, &err));
    REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_node_sandbox_create(test_node, spec, &sb, &err));
    podnet_sandbox_spec_free(spec);
    CHECK_OK(podnet_set_log_callback(PODNET_LOG_LEVEL_OFF, NULL, NULL, &err));
    pthread_mutex_lock(&sink.mu);
    CHECK(sink.records >= 1);
    CHECK_INT(sink.saw_debug_with_span, 1);
    CHECK_INT(sink.saw_warn_rollback, 0);
    CHECK_INT(sink.bad_target, 0);
    after_off = sink.records;
    pthread_mutex_unlock(&sink.mu);
    /* off: no more records */
    podnet_sandbox_free(test_sandbox_create("log-1"));
    CHECK_INT(sink.records, after_off);
    /* a threshold filters: WARN does not see the debug record */
    CHECK_OK(podnet_set_log_callback(PODNET_LOG_LEVEL_WARN, collect, &sink, &err));
    podnet_sandbox_free(test_sandbox_create("log-1"));
    CHECK_INT(sink.saw_debug_with_span, 1);
    CHECK_OK(podnet_set_log_callback(PODNET_LOG_LEVEL_OFF, collect, &sink, &err));
    CHECK_OK(podnet_node_sandbox_delete(test_node, "log-1", &err));
    CHECK(sb == NULL);
    CHECK_INT(list_count(test_node), 0);
    podnet_sandbox_free(a);
    podnet_sandbox_free(b);
}

/* Calling podnet from the log callback is documented as forbidden; doing it anyway makes the
 * inner call panic (a runtime inside a runtime). The panic must come back as a status, not
 * abort the process. */
static podnet_status inner_status = PODNET_STATUS_OK;
static int inner_calls = 0;
static char inner_message[512];

static void reenter(void *user_data, podnet_log_level level, const char *target, const char *message) {
    podnet_sandbox *sb = NULL;
    podnet_error *err = NULL;
    (void)user_data, (void)level, (void)target, (void)message;
    if (inner_calls++ > 0) return;
    inner_status = podnet_node_sandbox_get(test_node, "panic-1", &sb, &err);
    snprintf(inner_message, sizeof inner_message, "%s", err ? podnet_error_message(err) : "");
    podnet_error_free(err);
    podnet_sandbox_free(sb);
}

void test_panic_boundary(void) {
    podnet_sandbox *a = test_sandbox_create("panic-1"), *b;
    fprintf(stderr, "   (a panic message from podnet follows: expected)\n");
    CHECK_OK(podnet_set_log_callback(PODNET_LOG_LEVEL_DEBUG, reenter, NULL, &err));
    b = test_sandbox_create("panic-1"); /* emits a debug record -> reenter */
    CHECK_OK(podnet_set_log_callback(PODNET_LOG_LEVEL_OFF, NULL, NULL, &err));
    CHECK(inner_calls >= 1);
    CHECK_INT(inner_status, PODNET_STATUS_PANIC);
    CHECK(strstr(inner_message, "panic") != NULL);
    /* the outer call and the node are fine */
    CHECK(b != NULL);
    delete_last("panic-1");
    podnet_sandbox_free(a);
    podnet_sandbox_free(b);
}
