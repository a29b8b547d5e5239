//! ticketlab's built-in plugins.
