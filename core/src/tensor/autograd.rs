//! Reverse-mode autograd over luminal graphs.
