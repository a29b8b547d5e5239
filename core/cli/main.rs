//! The `ticketlab` command.
fn main() {}
