package podnet

// #include <podnet.h>
import "C"

// RepairReport is what Repair found and fixed.
type RepairReport struct {
	// TableRecreated: podnet's nftables table was missing (someone flushed the ruleset).
	TableRecreated bool
	// PortsRestored: host-port elements (one per mapping and pod address family) re-added.
	PortsRestored int
}

// Repair re-installs podnet's nftables table (host ports, egress masquerade) and every
// recorded host port when someone flushed the ruleset or deleted elements. Other tables are
// never touched; a healthy node is left as it is. Run it after anything that may flush
// nftables (a firewall reload).
func (n *Node) Repair() (*RepairReport, error) {
	var rep *C.podnet_repair_report
	var st C.podnet_status
	var cerr *C.podnet_error
	if err := n.do(func(node *C.podnet_node) { st = C.podnet_node_repair(node, &rep, &cerr) }); err != nil {
		return nil, err
	}
	if err := takeError(st, cerr, "podnet_node_repair"); err != nil {
		return nil, err
	}
	defer C.podnet_repair_report_free(rep)
	return &RepairReport{
		TableRecreated: bool(C.podnet_repair_report_table_recreated(rep)),
		PortsRestored:  int(C.podnet_repair_report_ports_restored(rep)),
	}, nil
}
