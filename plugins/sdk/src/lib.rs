//! The ticketlab plugin SDK.
