//! Links and registers the first-party plugins.
