// Command auth is the wsmq auth service.
package main

func main() {}
