//! Known-answer checks for dktp.
