// Command racy has a data race on purpose: testenv's tests build it with
// -race and check that the race fails the test that started it.
package main

import "fmt"

func main() {
	n := 0
	done := make(chan struct{})
	go func() {
		n++ // races with the increment below: no synchronisation between them
		close(done)
	}()
	n++
	<-done
	fmt.Println("racy: n =", n)
}
