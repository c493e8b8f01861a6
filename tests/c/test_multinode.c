/*
 * C tests of libpodnet, part 4: the multi-node calls. Node config additions (underlay, cluster
 * CIDRs, cross-node mode, VXLAN, egress masquerade), the per-sandbox pod mode, peers (on a
 * second node in its own netns with a veth underlay, created by this test with `ip`: the test's
 * world is a throwaway namespace), host ports of existing sandboxes with repair after a flushed
 * ruleset, and the bad-input table of every new pointer argument.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static const char NOT_UTF8[] = "n\xe2\x28\xa1";

static int starts_with(const char *s, const char *prefix) {
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static podnet_peer *make_peer(const char *name, const char *ip, const char *cidr) {
    podnet_peer *p = NULL;
    CHECK_OK(podnet_peer_new(name, ip, &p, &err));
    if (cidr) CHECK_OK(podnet_peer_add_pod_cidr(p, cidr, &err));
    return p;
}

static podnet_port_list *ports_of(int protocol, const char *host_ip, uint16_t host_port, uint16_t container_port) {
    podnet_port_list *l = NULL;
    CHECK_OK(podnet_port_list_new(&l, &err));
    CHECK_OK(podnet_port_list_add(l, protocol, host_ip, host_port, container_port, &err));
    return l;
}

/* The cross-node settings of a node config, each set with CHECK_OK in this order. */
static void set_cross_node(podnet_node_config *cfg, podnet_cross_node_mode mode, uint32_t vni, uint16_t port,
                           const char *device, bool disable_tx_checksum_offload, bool masquerade) {
    CHECK_OK(podnet_node_config_set_cross_node_mode(cfg, mode, &err));
    CHECK_OK(podnet_node_config_set_vxlan_vni(cfg, vni, &err));
    CHECK_OK(podnet_node_config_set_vxlan_port(cfg, port, &err));
    CHECK_OK(podnet_node_config_set_vxlan_device(cfg, device, &err));
    CHECK_OK(podnet_node_config_set_vxlan_disable_tx_checksum_offload(cfg, disable_tx_checksum_offload, &err));
    CHECK_OK(podnet_node_config_set_egress_masquerade(cfg, masquerade, &err));
}

DEFINE_LIST_COUNT(port_entries, podnet_port_entry_list, podnet_node_ports_list, podnet_port_entry_list_count, podnet_port_entry_list_free)

/* Builders that need no node: config setters, spec mode, peer, port list. */
void test_bad_input_multinode_objects(void) {
    podnet_node_config *cfg = NULL;
    podnet_sandbox_spec *spec = NULL;
    podnet_peer *peer = NULL, *peer_sent = SENT;
    podnet_port_list *pl = NULL;
    char long_name[200], long_ifname[17];
    const uint8_t mac_ok[6] = {0x0e, 0x11, 0x22, 0x33, 0x44, 0x55}, mac_multicast[6] = {0x01, 0, 0x5e, 0, 0, 1},
                  mac_zero[6] = {0, 0, 0, 0, 0, 0};

    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    memset(long_ifname, 'i', sizeof long_ifname - 1);
    long_ifname[sizeof long_ifname - 1] = '\0';

    /* node config */
    CHECK_OK(podnet_node_config_new("mn", &cfg, &err));
    REFUSED_CALL(NUL, podnet_node_config_set_underlay, NULL, "10.200.0.1", NULL, &err);
    REFUSED_CALL(NUL, podnet_node_config_set_underlay, cfg, NULL, "eth0", &err);
    REFUSED_CALL(UTF, podnet_node_config_set_underlay, cfg, NOT_UTF8, NULL, &err);
    REFUSED_CALL(ADDR, podnet_node_config_set_underlay, cfg, "10.200.0", NULL, &err);
    REFUSED_CALL(ADDR, podnet_node_config_set_underlay, cfg, "10.200.0.1/24", NULL, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_underlay, cfg, "0.0.0.0", NULL, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_underlay, cfg, "127.0.0.1", NULL, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_underlay, cfg, "ff02::1", NULL, &err);
    REFUSED_CALL(UTF, podnet_node_config_set_underlay, cfg, "10.200.0.1", NOT_UTF8, &err);
    REFUSED_CALL(LONG, podnet_node_config_set_underlay, cfg, "10.200.0.1", long_ifname, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_underlay, cfg, "10.200.0.1", "eth/0", &err);
    REFUSED_CALL(ARG, podnet_node_config_set_underlay, cfg, "10.200.0.1", "", &err);
    CHECK_OK(podnet_node_config_set_underlay(cfg, "10.200.0.1", NULL, &err)); /* NULL interface: a value */
    CHECK_OK(podnet_node_config_set_underlay(cfg, "fd00:200::1", "eth0", &err));
    REFUSED_STRING(podnet_node_config_add_cluster_cidr, cfg, "10.244.0.0/16", long_name);
    REFUSED_CIDR(podnet_node_config_add_cluster_cidr, cfg);
    REFUSED_CALL(ARG, podnet_node_config_add_cluster_cidr, cfg, "10.244.0.1/16", &err);
    CHECK_OK(podnet_node_config_add_cluster_cidr(cfg, "10.244.0.0/16", &err));
    CHECK_OK(podnet_node_config_add_cluster_cidr(cfg, "10.244.0.0/16", &err)); /* again: fine */
    REFUSED_CALL(ARG, podnet_node_config_add_cluster_cidr, cfg, "10.245.0.0/16", &err);
    REFUSED_CALL(NUL, podnet_node_config_set_cross_node_mode, NULL, PODNET_CROSS_NODE_MODE_AUTO, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_cross_node_mode, cfg, PODNET_CROSS_NODE_MODE_UNKNOWN, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_cross_node_mode, cfg, 4, &err);
    REFUSED_CALL(NUL, podnet_node_config_set_vxlan_vni, NULL, 1, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_vxlan_vni, cfg, 0, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_vxlan_vni, cfg, 16777216, &err);
    REFUSED_CALL(NUL, podnet_node_config_set_vxlan_port, NULL, 4789, &err);
    REFUSED_CALL(ARG, podnet_node_config_set_vxlan_port, cfg, 0, &err);
    REFUSED_STRING(podnet_node_config_set_vxlan_device, cfg, "vx0", long_ifname);
    REFUSED_CALL(ARG, podnet_node_config_set_vxlan_device, cfg, "vx 0", &err);
    REFUSED(NUL, "podnet_node_config_set_vxlan_disable_tx_checksum_offload",
            podnet_node_config_set_vxlan_disable_tx_checksum_offload(NULL, false, &err));
    REFUSED_CALL(NUL, podnet_node_config_set_egress_masquerade, NULL, false, &err);
    set_cross_node(cfg, PODNET_CROSS_NODE_MODE_ROUTED, 16777215, 4789, "flannel.1", false, false);
    /* the whole config: a pod CIDR outside the cluster CIDR is refused */
    CHECK_OK(podnet_node_config_add_pod_cidr(cfg, "10.99.0.0/24", &err));
    REFUSED(ARG, NULL, podnet_node_config_validate(cfg, &err));
    podnet_node_config_free(cfg);
    cfg = NULL;
    CHECK_OK(podnet_node_config_new("mn", &cfg, &err));
    CHECK_OK(podnet_node_config_add_pod_cidr(cfg, "10.244.7.0/24", &err));
    CHECK_OK(podnet_node_config_add_cluster_cidr(cfg, "10.244.0.0/16", &err));
    CHECK_OK(podnet_node_config_validate(cfg, &err));
    podnet_node_config_free(cfg);

    /* sandbox spec mode */
    CHECK_OK(podnet_sandbox_spec_new("mode-1", &spec, &err));
    REFUSED_CALL(NUL, podnet_sandbox_spec_set_mode, NULL, PODNET_MODE_ROUTED, &err);
    REFUSED_CALL(ARG, podnet_sandbox_spec_set_mode, spec, PODNET_MODE_UNKNOWN, &err);
    REFUSED_CALL(ARG, podnet_sandbox_spec_set_mode, spec, 3, &err);
    CHECK_OK(podnet_sandbox_spec_set_mode(spec, PODNET_MODE_BRIDGE, &err));
    podnet_sandbox_spec_free(spec);

    /* peer */
    REFUSED_CALL(NUL, podnet_peer_new, NULL, "10.200.0.2", &peer_sent, &err);
    REFUSED_CALL(NUL, podnet_peer_new, "n2", NULL, &peer_sent, &err);
    REFUSED_CALL(NUL, podnet_peer_new, "n2", "10.200.0.2", NULL, &err);
    REFUSED_CALL(UTF, podnet_peer_new, NOT_UTF8, "10.200.0.2", &peer_sent, &err);
    REFUSED_CALL(UTF, podnet_peer_new, "n2", NOT_UTF8, &peer_sent, &err);
    REFUSED_CALL(LONG, podnet_peer_new, long_name, "10.200.0.2", &peer_sent, &err);
    REFUSED_CALL(ARG, podnet_peer_new, "../n2", "10.200.0.2", &peer_sent, &err);
    REFUSED_CALL(ARG, podnet_peer_new, "", "10.200.0.2", &peer_sent, &err);
    REFUSED_CALL(ADDR, podnet_peer_new, "n2", "10.200.0.300", &peer_sent, &err);
    REFUSED_CALL(ADDR, podnet_peer_new, "n2", "fd00:::2", &peer_sent, &err);
    REFUSED_CALL(ADDR, podnet_peer_new, "n2", "node-2.example", &peer_sent, &err);
    REFUSED_CALL(ARG, podnet_peer_new, "n2", "0.0.0.0", &peer_sent, &err);
    REFUSED_CALL(ARG, podnet_peer_new, "n2", "::1", &peer_sent, &err);
    REFUSED_CALL(ARG, podnet_peer_new, "n2", "224.0.0.5", &peer_sent, &err);
    CHECK(peer_sent == SENT);
    CHECK_OK(podnet_peer_new("n2", "10.200.0.2", &peer, &err));
    REFUSED_STRING(podnet_peer_add_pod_cidr, peer, "10.244.2.0/24", long_name);
    REFUSED_CIDR(podnet_peer_add_pod_cidr, peer);
    REFUSED_CALL(ARG, podnet_peer_add_pod_cidr, peer, "10.244.2.1/24", &err);
    REFUSED_CALL(NUL, podnet_peer_set_vtep_mac, NULL, mac_ok, 6, &err);
    REFUSED_CALL(NUL, podnet_peer_set_vtep_mac, peer, NULL, 6, &err);
    REFUSED_CALL(NUL, podnet_peer_set_vtep_mac, peer, NULL, 0, &err);
    REFUSED_CALL(ARG, podnet_peer_set_vtep_mac, peer, mac_ok, 5, &err);
    REFUSED_CALL(ARG, podnet_peer_set_vtep_mac, peer, mac_ok, 7, &err);
    REFUSED_CALL(ARG, podnet_peer_set_vtep_mac, peer, mac_ok, (size_t)-1, &err);
    REFUSED_CALL(ARG, podnet_peer_set_vtep_mac, peer, mac_multicast, 6, &err);
    REFUSED_CALL(ARG, podnet_peer_set_vtep_mac, peer, mac_zero, 6, &err);
    /* nothing of that changed the peer */
    CHECK_STR(podnet_peer_get_info(peer)->name, "n2");
    CHECK_STR(podnet_peer_get_info(peer)->underlay_ip, "10.200.0.2");
    CHECK_INT(podnet_peer_get_info(peer)->pod_cidrs.count, 0);
    CHECK(starts_with(podnet_peer_get_info(peer)->vtep_mac, "0e:") && strlen(podnet_peer_get_info(peer)->vtep_mac) == 17);
    CHECK_OK(podnet_peer_add_pod_cidr(peer, "10.244.2.0/24", &err));
    CHECK_OK(podnet_peer_add_pod_cidr(peer, "fd00:244:2::/64", &err));
    CHECK_OK(podnet_peer_add_pod_cidr(peer, "10.244.2.0/24", &err)); /* again: fine */
    CHECK_INT(podnet_peer_get_info(peer)->pod_cidrs.count, 2);
    CHECK_STR(podnet_peer_get_info(peer)->pod_cidrs.items[0], "10.244.2.0/24");
    CHECK_STR(podnet_peer_get_info(peer)->pod_cidrs.items[1], "fd00:244:2::/64");
    CHECK_OK(podnet_peer_set_vtep_mac(peer, mac_ok, sizeof mac_ok, &err));
    CHECK_STR(podnet_peer_get_info(peer)->vtep_mac, "0e:11:22:33:44:55");
    podnet_peer_free(peer);
    podnet_peer_free(NULL);
    CHECK(podnet_peer_get_info(NULL) == NULL);
    CHECK_INT(podnet_peer_list_count(NULL), 0);
    CHECK(podnet_peer_list_at(NULL, 0) == NULL);
    CHECK(podnet_sync_report_get_info(NULL) == NULL);
    podnet_peer_list_free(NULL);
    podnet_sync_report_free(NULL);

    /* port list */
    REFUSED_CALL(NUL, podnet_port_list_new, NULL, &err);
    CHECK_OK(podnet_port_list_new(&pl, &err));
    REFUSED_CALL(NUL, podnet_port_list_add, NULL, PODNET_PROTOCOL_TCP, NULL, 80, 80, &err);
    REFUSED_CALL(UTF, podnet_port_list_add, pl, PODNET_PROTOCOL_TCP, NOT_UTF8, 80, 80, &err);
    REFUSED_CALL(ADDR, podnet_port_list_add, pl, PODNET_PROTOCOL_TCP, "10.0.0", 80, 80, &err);
    REFUSED_CALL(ADDR, podnet_port_list_add, pl, PODNET_PROTOCOL_TCP, "10.0.0.1/32", 80, 80, &err);
    REFUSED_CALL(ARG, podnet_port_list_add, pl, PODNET_PROTOCOL_UNKNOWN, NULL, 80, 80, &err);
    REFUSED_CALL(ARG, podnet_port_list_add, pl, 200, NULL, 80, 80, &err);
    REFUSED_CALL(ARG, podnet_port_list_add, pl, PODNET_PROTOCOL_TCP, NULL, 0, 80, &err);
    REFUSED_CALL(ARG, podnet_port_list_add, pl, PODNET_PROTOCOL_TCP, NULL, 80, 0, &err);
    CHECK_OK(podnet_port_list_add(pl, PODNET_PROTOCOL_TCP, NULL, 80, 8080, &err));
    REFUSED_CALL(ARG, podnet_port_list_add, pl, PODNET_PROTOCOL_TCP, NULL, 80, 9090, &err);
    CHECK_OK(podnet_port_list_add(pl, PODNET_PROTOCOL_TCP, "10.0.0.1", 80, 8080, &err)); /* other host IP */
    CHECK_OK(podnet_port_list_add(pl, PODNET_PROTOCOL_SCTP, NULL, 80, 8080, &err));
    CHECK_INT(podnet_port_list_count(pl), 3);
    CHECK_INT(podnet_port_list_count(NULL), 0);
    podnet_port_list_free(pl);
    podnet_port_list_free(NULL);
    CHECK_INT(podnet_port_entry_list_count(NULL), 0);
    CHECK(podnet_port_entry_list_at(NULL, 0) == NULL);
    CHECK(podnet_repair_report_get_info(NULL) == NULL);
    podnet_port_entry_list_free(NULL);
    podnet_repair_report_free(NULL);
}

/* The node calls with bad input, on the test node (no underlay): refused, nothing changes. */
void test_bad_input_multinode_node(void) {
    podnet_peer *n2 = make_peer("n2", "10.200.0.2", "10.244.2.0/24");
    const podnet_peer *one[] = {NULL}, *nulls[] = {NULL, NULL};
    podnet_sync_report *rep = SENT;
    podnet_peer_list *plist = SENT;
    podnet_port_list *pl = ports_of(PODNET_PROTOCOL_TCP, NULL, 8099, 80);
    podnet_sandbox *sb = SENT;
    podnet_port_entry_list *elist = SENT;
    podnet_repair_report *rrep = SENT;
    char long_id[200];

    memset(long_id, 'i', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    one[0] = n2;
    nulls[0] = n2;

    /* peers */
    REFUSED_CALL(NUL, podnet_node_peer_add, NULL, n2, &err);
    REFUSED_CALL(NUL, podnet_node_peer_add, test_node, NULL, &err);
    REFUSED(ARG, NULL, podnet_node_peer_add(test_node, n2, &err)); /* the node has no underlay */
    REFUSED_STRING(podnet_node_peer_remove, test_node, "n2", long_id);
    REFUSED_CALL(ARG, podnet_node_peer_remove, test_node, "a/b", &err);
    REFUSED_CALL(NUL, podnet_node_peers_sync, NULL, one, 1, &rep, &err);
    REFUSED_CALL(NUL, podnet_node_peers_sync, test_node, NULL, 1, &rep, &err);
    REFUSED_CALL(NUL, podnet_node_peers_sync, test_node, nulls, 2, &rep, &err);
    REFUSED_CALL(NUL, podnet_node_peers_sync, test_node, one, 1, NULL, &err);
    REFUSED_CALL(ARG, podnet_node_peers_sync, test_node, one, (size_t)-1, &rep, &err);
    REFUSED(ARG, NULL, podnet_node_peers_sync(test_node, one, 1, &rep, &err)); /* no underlay */
    REFUSED_CALL(NUL, podnet_node_peer_list, NULL, &plist, &err);
    REFUSED_CALL(NUL, podnet_node_peer_list, test_node, NULL, &err);
    /* host ports */
    {
        /* add and remove take the same arguments and check them the same way */
        static const struct {
            const char *name;
            podnet_status (*fn)(const podnet_node *, const char *, const podnet_port_list *, podnet_sandbox **,
                                podnet_error **);
        } calls[] = {{"podnet_node_ports_add", podnet_node_ports_add},
                     {"podnet_node_ports_remove", podnet_node_ports_remove}};
        for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
            const char *op = calls[i].name;
            REFUSED(NUL, op, calls[i].fn(NULL, "x", pl, &sb, &err));
            REFUSED(NUL, op, calls[i].fn(test_node, NULL, pl, &sb, &err));
            REFUSED(NUL, op, calls[i].fn(test_node, "x", NULL, &sb, &err));
            REFUSED(NUL, op, calls[i].fn(test_node, "x", pl, NULL, &err));
            REFUSED(UTF, op, calls[i].fn(test_node, NOT_UTF8, pl, &sb, &err));
            REFUSED(LONG, op, calls[i].fn(test_node, long_id, pl, &sb, &err));
            REFUSED(ARG, op, calls[i].fn(test_node, "..", pl, &sb, &err));
            REFUSED(ARG, op, calls[i].fn(test_node, "a b", pl, &sb, &err));
            REFUSED(PODNET_STATUS_NOT_FOUND, NULL, calls[i].fn(test_node, "no-such-pod", pl, &sb, &err));
        }
    }
    REFUSED_CALL(NUL, podnet_node_ports_list, NULL, &elist, &err);
    REFUSED_CALL(NUL, podnet_node_ports_list, test_node, NULL, &err);
    REFUSED_CALL(NUL, podnet_node_repair, NULL, &rrep, &err);
    REFUSED_CALL(NUL, podnet_node_repair, test_node, NULL, &err);
    CHECK(rep == SENT && plist == SENT && sb == SENT && elist == SENT && rrep == SENT);
    CHECK_INT(port_entries(test_node), 0);
    plist = NULL;
    CHECK_OK(podnet_node_peer_list(test_node, &plist, &err));
    CHECK_INT(podnet_peer_list_count(plist), 0);
    podnet_peer_list_free(plist);
    podnet_peer_free(n2);
    podnet_port_list_free(pl);
}

/* A routed pod on the bridge-mode test node (per-sandbox pod mode). */
void test_sandbox_mode(void) {
    podnet_sandbox_spec *spec = NULL;
    podnet_sandbox *sb = NULL;
    CHECK_OK(podnet_sandbox_spec_new("routed-1", &spec, &err));
    CHECK_OK(podnet_sandbox_spec_set_mode(spec, PODNET_MODE_ROUTED, &err));
    CHECK_OK(podnet_node_sandbox_create(test_node, spec, &sb, &err));
    podnet_sandbox_spec_free(spec);
    CHECK_INT(podnet_sandbox_get_info(sb)->mode, PODNET_MODE_ROUTED);
    CHECK(starts_with(podnet_sandbox_get_info(sb)->ips.items[0], "10.88.0.") && strstr(podnet_sandbox_get_info(sb)->ips.items[0], "/32") != NULL);
    CHECK_STR(podnet_sandbox_get_info(sb)->gateways.items[0], "169.254.1.1");
    podnet_sandbox_free(sb);
    CHECK_OK(podnet_node_sandbox_delete(test_node, "routed-1", &err));
}

#define UL "ctest-ul"
#define IN_UL "ip -n " UL " "

/* Peers on a second node in its own netns: underlay 10.200.0.1/24 on a veth, cross-node mode
 * auto (on-link peers routed, the rest over VXLAN). */
void test_peers(void) {
    podnet_node_config *cfg = NULL;
    podnet_node *node = NULL, *bad = NULL;
    podnet_peer *n2, *n3, *n4, *self, *overlap, *empty, *n2_again;
    podnet_peer_list *list = NULL;
    podnet_sync_report *rep = NULL;
    const podnet_peer *want[2];
    const uint8_t mac3[6] = {0x0e, 0, 0, 0, 0, 0x03};

    /* IPv6 off in the underlay netns: the kernel's own NOARP multicast neighbours (MLD's
     * ff02::16) on the VXLAN device would otherwise be counted (and removed) by sync as stale
     * peer entries whenever MLD re-creates them, making the counts below racy (a core issue:
     * peers.rs reads every neighbour of the device, not only podnet's PERMANENT ones). */
    if (!sh_ok("ip netns add " UL " && ip netns exec " UL " sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6"
               " && echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6' && " IN_UL
               "link add ul0 type veth peer name ul1 && " IN_UL "addr add 10.200.0.1/24 dev ul0 && " IN_UL
               "link set ul0 up && " IN_UL "link set ul1 up")) {
        check_fail(__FILE__, __LINE__, "could not build the underlay");
        return;
    }
    CHECK_OK(podnet_node_config_new("ulnode", &cfg, &err));
    CHECK_OK(podnet_node_config_set_netns_path(cfg, "/run/netns/" UL, &err));
    CHECK_OK(podnet_node_config_add_pod_cidr(cfg, "10.244.1.0/24", &err));
    CHECK_OK(podnet_node_config_add_cluster_cidr(cfg, "10.244.0.0/16", &err));
    set_cross_node(cfg, PODNET_CROSS_NODE_MODE_AUTO, 42, 4789, "vx-ctest", true, true);
    /* an underlay address no interface holds */
    CHECK_OK(podnet_node_config_set_underlay(cfg, "10.200.0.99", NULL, &err));
    REFUSED(PODNET_STATUS_NOT_FOUND, NULL, podnet_node_open(cfg, &bad, &err));
    CHECK(bad == NULL);
    CHECK_OK(podnet_node_config_set_underlay(cfg, "10.200.0.1", "ul0", &err));
    CHECK_OK(podnet_node_open(cfg, &node, &err));
    podnet_node_config_free(cfg);
    if (node == NULL) goto out;
    CHECK(sh_ok(IN_UL "-d link show vx-ctest | grep -q 'vxlan id 42 .*dstport 4789'"));
    { /* the node's status: its own VTEP MAC is the device's */
        podnet_node_status *st = NULL;
        const podnet_node_status_info *si;
        char cmd[160];
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, podnet_node_get_status, node, NULL, &err);
        REFUSED_CALL(PODNET_STATUS_NULL_ARGUMENT, podnet_node_get_status, NULL, &st, &err);
        CHECK(podnet_node_status_get_info(NULL) == NULL);
        CHECK_OK(podnet_node_get_status(node, &st, &err));
        si = podnet_node_status_get_info(st);
        CHECK(si != NULL && si->struct_size == sizeof *si);
        if (si != NULL) {
            CHECK_STR(si->name, "ulnode");
            CHECK(si->ready);
            CHECK_INT(si->pod_mtu, 1450);
            CHECK_INT(si->gateways.count, 1);
            CHECK(si->vtep_mac != NULL && strlen(si->vtep_mac) == 17);
            if (si->vtep_mac != NULL) {
                snprintf(cmd, sizeof cmd, IN_UL "link show vx-ctest | grep -q 'link/ether %s '", si->vtep_mac);
                CHECK(sh_ok(cmd));
            }
        }
        podnet_node_status_free(st);
        podnet_node_status_free(NULL);
    }

    n2 = make_peer("n2", "10.200.0.2", "10.244.2.0/24");   /* on-link: routed */
    n3 = make_peer("n3", "192.168.50.3", "10.244.3.0/24"); /* off-link: overlay */
    n4 = make_peer("n4", "10.200.0.4", "10.244.4.0/24");
    CHECK_OK(podnet_peer_set_vtep_mac(n3, mac3, sizeof mac3, &err));
    CHECK_OK(podnet_node_peer_add(node, n2, &err));
    CHECK_OK(podnet_node_peer_add(node, n3, &err));
    CHECK_OK(podnet_node_peer_add(node, n2, &err)); /* again: nothing changes */
    CHECK(sh_ok(IN_UL "route show 10.244.2.0/24 | grep -q 'via 10.200.0.2 dev ul0'"));
    CHECK(sh_ok(IN_UL "route show 10.244.3.0/24 | grep -q 'via 10.244.3.0 dev vx-ctest'"));
    CHECK(sh_ok(IN_UL "neigh show dev vx-ctest | grep -q '10.244.3.0 lladdr 0e:00:00:00:00:03'"));

    /* refused peers change nothing */
    self = make_peer("ulnode", "10.200.0.9", "10.244.9.0/24");
    overlap = make_peer("n9", "10.200.0.9", "10.244.1.128/25");
    empty = make_peer("n8", "10.200.0.8", NULL);
    REFUSED(PODNET_STATUS_INVALID_ARGUMENT, NULL, podnet_node_peer_add(node, self, &err));
    REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_node_peer_add(node, overlap, &err));
    REFUSED(PODNET_STATUS_INVALID_ARGUMENT, NULL, podnet_node_peer_add(node, empty, &err));
    want[0] = n2, want[1] = overlap;
    rep = NULL;
    REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_node_peers_sync(node, want, 2, &rep, &err));
    n2_again = make_peer("n2", "10.200.0.22", "10.244.22.0/24");
    want[0] = n2, want[1] = n2_again;
    REFUSED(PODNET_STATUS_INVALID_ARGUMENT, NULL, podnet_node_peers_sync(node, want, 2, &rep, &err)); /* n2 twice */
    CHECK(rep == NULL);
    podnet_peer_free(n2_again);
    podnet_peer_free(self);
    podnet_peer_free(overlap);
    podnet_peer_free(empty);

    /* list: sorted by name, everything read back */
    CHECK_OK(podnet_node_peer_list(node, &list, &err));
    CHECK_INT(podnet_peer_list_count(list), 2);
    CHECK_STR(podnet_peer_get_info(podnet_peer_list_at(list, 0))->name, "n2");
    CHECK_STR(podnet_peer_get_info(podnet_peer_list_at(list, 0))->underlay_ip, "10.200.0.2");
    CHECK_STR(podnet_peer_get_info(podnet_peer_list_at(list, 0))->vtep_mac, podnet_peer_get_info(n2)->vtep_mac);
    CHECK_STR(podnet_peer_get_info(podnet_peer_list_at(list, 1))->name, "n3");
    CHECK_INT(podnet_peer_get_info(podnet_peer_list_at(list, 1))->pod_cidrs.count, 1);
    CHECK_STR(podnet_peer_get_info(podnet_peer_list_at(list, 1))->pod_cidrs.items[0], "10.244.3.0/24");
    CHECK_STR(podnet_peer_get_info(podnet_peer_list_at(list, 1))->vtep_mac, "0e:00:00:00:00:03");
    CHECK(podnet_peer_list_at(list, 2) == NULL);

    /* sync to {n2 (borrowed from the list), n4}: n3's route, neighbour and FDB entry go */
    want[0] = podnet_peer_list_at(list, 0), want[1] = n4;
    CHECK_OK(podnet_node_peers_sync(node, want, 2, &rep, &err));
    CHECK_INT(podnet_sync_report_get_info(rep)->peers, 2);
    CHECK_INT(podnet_sync_report_get_info(rep)->added, 1);
    CHECK_INT(podnet_sync_report_get_info(rep)->removed, 3);
    podnet_sync_report_free(rep);
    podnet_peer_list_free(list);
    CHECK(sh_fails(IN_UL "route show 10.244.3.0/24 | grep -q ."));
    CHECK(sh_ok(IN_UL "route show 10.244.4.0/24 | grep -q 'via 10.200.0.4 dev ul0'"));
    list = NULL;
    CHECK_OK(podnet_node_peer_list(node, &list, &err));
    CHECK_INT(podnet_peer_list_count(list), 2);
    CHECK_STR(podnet_peer_get_info(podnet_peer_list_at(list, 1))->name, "n4");
    podnet_peer_list_free(list);
    /* converged: a second sync changes nothing */
    want[0] = n2;
    rep = NULL;
    CHECK_OK(podnet_node_peers_sync(node, want, 2, &rep, &err));
    CHECK_INT(podnet_sync_report_get_info(rep)->added, 0);
    CHECK_INT(podnet_sync_report_get_info(rep)->removed, 0);
    podnet_sync_report_free(rep);

    /* remove: idempotent */
    CHECK_OK(podnet_node_peer_remove(node, "n4", &err));
    CHECK_OK(podnet_node_peer_remove(node, "n4", &err));
    CHECK_OK(podnet_node_peer_remove(node, "never-a-peer", &err));
    CHECK(sh_fails(IN_UL "route show 10.244.4.0/24 | grep -q ."));
    /* sync to nothing: every peer entry goes */
    rep = NULL;
    CHECK_OK(podnet_node_peers_sync(node, NULL, 0, &rep, &err));
    CHECK_INT(podnet_sync_report_get_info(rep)->peers, 0);
    CHECK_INT(podnet_sync_report_get_info(rep)->removed, 1);
    podnet_sync_report_free(rep);
    list = NULL;
    CHECK_OK(podnet_node_peer_list(node, &list, &err));
    CHECK_INT(podnet_peer_list_count(list), 0);
    podnet_peer_list_free(list);
    CHECK(sh_fails(IN_UL "route show proto 81 | grep -q ."));
    podnet_peer_free(n2);
    podnet_peer_free(n3);
    podnet_peer_free(n4);
out:
    podnet_node_free(node);
    CHECK(sh_ok("ip netns del " UL));
}

/* Host ports of existing sandboxes on the test node, and repair after the table was deleted. */
void test_host_ports(void) {
    podnet_sandbox *a = NULL, *b = NULL, *sb = NULL, *untouched;
    podnet_port_list *pa = NULL, *pb = ports_of(PODNET_PROTOCOL_TCP, NULL, 8081, 81), *ptcp;
    podnet_port_entry_list *list = NULL;
    podnet_repair_report *rep = NULL;
    const podnet_port_entry *e;
    char a_ip[64] = "";

    a = test_sandbox_create("hp-1");
    b = test_sandbox_create("hp-2");
    if (a == NULL || b == NULL) goto out;
    snprintf(a_ip, sizeof a_ip, "%s", podnet_sandbox_get_info(a)->ips.items[0]);
    if (strchr(a_ip, '/')) *strchr(a_ip, '/') = '\0';

    CHECK_OK(podnet_port_list_new(&pa, &err));
    CHECK_OK(podnet_port_list_add(pa, PODNET_PROTOCOL_TCP, NULL, 8081, 80, &err));
    CHECK_OK(podnet_port_list_add(pa, PODNET_PROTOCOL_UDP, "10.88.0.1", 5354, 53, &err));
    CHECK_OK(podnet_node_ports_add(test_node, "hp-1", pa, &sb, &err));
    CHECK_INT(podnet_sandbox_get_info(sb)->port_count, 2);
    CHECK_INT(podnet_sandbox_get_info(sb)->ports[0].host_port, 8081);
    CHECK_STR(podnet_sandbox_get_info(sb)->ports[1].host_ip, "10.88.0.1");
    podnet_sandbox_free(sb);
    sb = NULL;
    CHECK_OK(podnet_node_ports_add(test_node, "hp-1", pa, &sb, &err)); /* again: idempotent */
    CHECK_INT(podnet_sandbox_get_info(sb)->port_count, 2);
    podnet_sandbox_free(sb);
    CHECK(sh_ok("nft list table inet podnet | grep -q 8081"));
    /* another sandbox cannot take the same host port */
    untouched = sb = SENT;
    REFUSED(PODNET_STATUS_CONFLICT, NULL, podnet_node_ports_add(test_node, "hp-2", pb, &sb, &err));
    CHECK(sb == untouched);

    CHECK_OK(podnet_node_ports_list(test_node, &list, &err));
    CHECK_INT(podnet_port_entry_list_count(list), 2);
    e = podnet_port_entry_list_at(list, 0);
    CHECK_STR(e->sandbox_id, "hp-1");
    CHECK_INT(e->mapping.protocol, PODNET_PROTOCOL_TCP);
    CHECK(e->mapping.host_ip == NULL);
    CHECK_INT(e->mapping.host_port, 8081);
    CHECK_INT(e->mapping.container_port, 80);
    CHECK_INT(e->pod_ips.count, 1);
    CHECK_STR(e->pod_ips.items[0], a_ip);
    e = podnet_port_entry_list_at(list, 1);
    CHECK_INT(e->mapping.protocol, PODNET_PROTOCOL_UDP);
    CHECK_STR(e->mapping.host_ip, "10.88.0.1");
    CHECK_INT(e->mapping.host_port, 5354);
    CHECK_INT(e->mapping.container_port, 53);
    CHECK(podnet_port_entry_list_at(list, 2) == NULL);
    podnet_port_entry_list_free(list);

    /* someone deletes podnet's table: repair puts it back with both elements */
    CHECK(sh_ok("nft delete table inet podnet"));
    CHECK(sh_fails("nft list table inet podnet >/dev/null 2>&1"));
    CHECK_OK(podnet_node_repair(test_node, &rep, &err));
    CHECK(podnet_repair_report_get_info(rep)->table_recreated);
    CHECK_INT(podnet_repair_report_get_info(rep)->ports_restored, 2);
    podnet_repair_report_free(rep);
    CHECK(sh_ok("nft list table inet podnet | grep -q 8081"));
    rep = NULL;
    CHECK_OK(podnet_node_repair(test_node, &rep, &err)); /* healthy: nothing to do */
    CHECK(!podnet_repair_report_get_info(rep)->table_recreated);
    CHECK_INT(podnet_repair_report_get_info(rep)->ports_restored, 0);
    podnet_repair_report_free(rep);

    /* remove the TCP mapping (twice: the retry is fine); then hp-2 may take the port */
    ptcp = ports_of(PODNET_PROTOCOL_TCP, NULL, 8081, 80);
    sb = NULL;
    CHECK_OK(podnet_node_ports_remove(test_node, "hp-1", ptcp, &sb, &err));
    CHECK_INT(podnet_sandbox_get_info(sb)->port_count, 1);
    CHECK_INT(podnet_sandbox_get_info(sb)->ports[0].protocol, PODNET_PROTOCOL_UDP);
    podnet_sandbox_free(sb);
    sb = NULL;
    CHECK_OK(podnet_node_ports_remove(test_node, "hp-1", ptcp, &sb, &err));
    CHECK_INT(podnet_sandbox_get_info(sb)->port_count, 1);
    podnet_sandbox_free(sb);
    podnet_port_list_free(ptcp);
    sb = NULL;
    CHECK_OK(podnet_node_ports_add(test_node, "hp-2", pb, &sb, &err));
    CHECK_INT(podnet_sandbox_get_info(sb)->port_count, 1);
    CHECK_INT(podnet_sandbox_get_info(sb)->ports[0].container_port, 81);
    podnet_sandbox_free(sb);
    list = NULL;
    CHECK_OK(podnet_node_ports_list(test_node, &list, &err));
    CHECK_INT(podnet_port_entry_list_count(list), 2);
    CHECK_STR(podnet_port_entry_list_at(list, 0)->sandbox_id, "hp-1");
    CHECK_STR(podnet_port_entry_list_at(list, 1)->sandbox_id, "hp-2");
    podnet_port_entry_list_free(list);
out:
    CHECK_OK(podnet_node_sandbox_delete(test_node, "hp-1", &err));
    CHECK_OK(podnet_node_sandbox_delete(test_node, "hp-2", &err));
    CHECK_INT(port_entries(test_node), 0);
    CHECK(sh_fails("nft list table inet podnet | grep -q 8081"));
    podnet_sandbox_free(a);
    podnet_sandbox_free(b);
    podnet_port_list_free(pa);
    podnet_port_list_free(pb);
}
