//! ticketlab experiment files.
