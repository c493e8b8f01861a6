package cabi

import "strconv"

// EnumString is the String method of a Go type for a C enum: the value's name in names (one
// table for a package's enums, keyed by the typed constants), or "kind(N)" for a value this
// package does not know (one a later library added).
func EnumString[T ~uint32](v T, names map[any]string, kind string) string {
	if s, ok := names[v]; ok {
		return s
	}
	return kind + "(" + strconv.FormatUint(uint64(v), 10) + ")"
}
