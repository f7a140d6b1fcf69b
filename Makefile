# The two commands a new user needs: `make run` and `make check`. Both install what is missing
# from Debian's packages first (as root), then build with Meson and Ninja.
BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON      ?= meson

.PHONY: all deps run fill check check-plain check-asan bench fuzz format clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja: | deps
	$(MESON) setup $(BUILD)

$(ASAN_BUILD)/build.ninja: | deps
	$(MESON) setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false

# A server, an agent and simulated GPUs on this machine; Ctrl-C stops them.
run: all
	@$(BUILD)/gpool dev

# The FGD placement experiment on the openb traces.
fill: all
	@scripts/fill-default.sh $(BUILD)/gpool

check: deps
	@scripts/check.sh $(BUILD) $(ASAN_BUILD)

# The libFuzzer targets (tests/fuzz), built with clang, each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS)

bench: all
	@bench/fill-grid.py --gpool $(BUILD)/gpool

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
