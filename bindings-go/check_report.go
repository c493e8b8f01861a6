package podnet

// #include <podnet.h>
import "C"

// CheckReport is what CheckSandbox found for one sandbox: one line per difference between the
// kernel and the record, none when healthy. A copy: it owns no C memory.
type CheckReport struct {
	ID string
	// OK is true when the kernel matches the record.
	OK bool
	// Problems, e.g. "host veth pn3f2a1c0b9d11 is missing".
	Problems []string
}

func copyCheckReport(rep *C.podnet_check_report) *CheckReport {
	r := &CheckReport{
		ID: goString(C.podnet_check_report_id(rep)),
		OK: bool(C.podnet_check_report_is_ok(rep)),
	}
	if n := int(C.podnet_check_report_problem_count(rep)); n > 0 {
		r.Problems = make([]string, n)
		for i := range r.Problems {
			r.Problems[i] = goString(C.podnet_check_report_problem_at(rep, C.size_t(i)))
		}
	}
	return r
}
