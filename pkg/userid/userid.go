// Package userid is the one definition of a wsmq user id's shape: the auth
// service issues only such ids and the gateway authorizes queues by them.
package userid

// Len is the length of a user id: a MongoDB ObjectID in hex.
const Len = 24

// Rule describes a valid id, for error messages.
const Rule = "24 lowercase hexadecimal characters"

// Valid reports whether id has the auth service's form: 24 lowercase hex
// characters. Because no valid id contains '-', the queue names
// "<id>-<suffix>" of two users can never overlap.
func Valid(id string) bool {
	if len(id) != Len {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
