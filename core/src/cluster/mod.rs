//! Cluster address planning (filled in by the cluster issue).
