package podnet

// #include <podnet.h>
import "C"

import "strconv"

// HeaderVersion is the version of include/podnet.h this package was compiled against
// ("MAJOR.MINOR.PATCH"); Version returns the linked library's. The two match for the static
// library this package links.
var HeaderVersion = strconv.Itoa(C.PODNET_VERSION_MAJOR) + "." +
	strconv.Itoa(C.PODNET_VERSION_MINOR) + "." + strconv.Itoa(C.PODNET_VERSION_PATCH)

// Version is the linked library's version, "MAJOR.MINOR.PATCH".
func Version() string {
	return C.GoString(C.podnet_version())
}
