// Package docs holds the test that keeps the repository's Markdown honest:
// every relative link must reach a file or directory of the repository, and
// every #anchor a heading of the page it points to, slugged as GitHub
// slugs them. `make test-unit` runs it.
package docs
