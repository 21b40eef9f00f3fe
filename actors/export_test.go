package actors

// GroupRequest is the message a group coordinator actor serves, for tests
// that inject a panic on the next request (and not on a timer tick).
type GroupRequest = groupRequest
