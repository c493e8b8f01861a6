package podnet

// #include <podnet.h>
import "C"

// copySandboxList copies every sandbox of a C list (which the caller still owns and frees).
func copySandboxList(list *C.podnet_sandbox_list) ([]*Sandbox, error) {
	n := int(C.podnet_sandbox_list_count(list))
	out := make([]*Sandbox, 0, n)
	for i := 0; i < n; i++ {
		// Borrowed from the list: never freed on its own.
		sb := C.podnet_sandbox_list_at(list, C.size_t(i))
		if sb == nil {
			return nil, internalError("ListSandboxes", "sandbox %d of %d is missing", i, n)
		}
		s, err := copySandbox(sb, "ListSandboxes")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
