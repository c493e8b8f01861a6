//! C ABI of podnet (filled in by the C ABI issue).
