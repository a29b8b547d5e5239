//! Planner, content-addressed store and executor.
