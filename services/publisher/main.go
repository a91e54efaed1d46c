// Command publisher is the wsmq publisher service.
package main

func main() {}
