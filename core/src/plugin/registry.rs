//! The plugin registry: built-ins collected from inventory plus loaded dynamic plugins.
