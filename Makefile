# The newcomer's commands. Builds go to $(CARGO_TARGET_DIR) when it is set.
CARGO ?= cargo

.PHONY: run test doc bench lint fmt

## Build the model with the original's published arguments and run it on a random batch.
run:
	$(CARGO) run --release --example random_inputs

## The test suite (tiny model configurations, debug build).
test:
	$(CARGO) test --locked

## The API reference, warning-free, in target/doc/med_crossvit/index.html.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --lib

## Benchmarks (release build).
bench:
	$(CARGO) bench --bench model

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt
