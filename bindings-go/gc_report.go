package podnet

// #include <podnet.h>
import "C"

import "net/netip"

// GCReport is what GC removed, and the errors it met and went past. A copy: it owns no C
// memory.
type GCReport struct {
	// Sandboxes are the ids of the sandboxes deleted (not in the live list).
	Sandboxes []string
	// IPs are orphaned address reservations released.
	IPs []netip.Addr
	// Netns are the paths of orphaned netns pins removed.
	Netns []string
	// Links are the names of orphaned host veths deleted.
	Links []string
	// Errors, one line each.
	Errors []string
}

func copyGCReport(rep *C.podnet_gc_report) (*GCReport, error) {
	// cgo functions are not values: each count/at pair is spelled out.
	r := &GCReport{
		Sandboxes: gcStrings(int(C.podnet_gc_report_sandbox_count(rep)), func(i C.size_t) *C.char {
			return C.podnet_gc_report_sandbox_at(rep, i)
		}),
		Netns: gcStrings(int(C.podnet_gc_report_netns_count(rep)), func(i C.size_t) *C.char {
			return C.podnet_gc_report_netns_at(rep, i)
		}),
		Links: gcStrings(int(C.podnet_gc_report_link_count(rep)), func(i C.size_t) *C.char {
			return C.podnet_gc_report_link_at(rep, i)
		}),
		Errors: gcStrings(int(C.podnet_gc_report_error_count(rep)), func(i C.size_t) *C.char {
			return C.podnet_gc_report_error_at(rep, i)
		}),
	}
	ips := gcStrings(int(C.podnet_gc_report_ip_count(rep)), func(i C.size_t) *C.char {
		return C.podnet_gc_report_ip_at(rep, i)
	})
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, internalError("GC", "released address %q: %v", s, err)
		}
		r.IPs = append(r.IPs, a)
	}
	return r, nil
}

// gcStrings copies n strings of the report, read with at.
func gcStrings(n int, at func(C.size_t) *C.char) []string {
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = goString(at(C.size_t(i)))
	}
	return out
}
