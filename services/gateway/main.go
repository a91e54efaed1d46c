// Command gateway is the wsmq gateway service.
package main

func main() {}
