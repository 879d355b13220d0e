//! Auth rules, one test per rule of the room version documents, positive and negative.
//! (Being written; see the module's tests below.)
