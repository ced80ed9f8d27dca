# WorkStream — entry points (SPEC 1). Meson + Ninja do the real work.
BUILD    ?= build
ASAN     ?= build-asan
PREFIX   ?= /usr/local
BENCH    ?=
WORKSPACE ?=

.PHONY: all deps build run check check-fast check-asan install bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	@scripts/run-demo.sh "$(BUILD)" "$(WORKSPACE)"

# Every suite: the normal build, then the same tests under ASan+UBSan with
# leak checking, then the fuzz corpora replayed.
check: build
	meson test -C $(BUILD) --print-errorlogs --num-processes 2
	$(MAKE) check-asan

$(ASAN)/build.ninja:
	CC=clang meson setup $(ASAN) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=true

check-asan: deps $(ASAN)/build.ninja
	ninja -C $(ASAN)
	meson test -C $(ASAN) --print-errorlogs --num-processes 2

install: build
	meson configure $(BUILD) -Dprefix=$(abspath $(PREFIX))
	meson install -C $(BUILD) --quiet

bench: build
	@scripts/install-deps.sh --bench
	@python3 bench/run.py --build $(BUILD) $(if $(BENCH),--only $(BENCH),)

clean:
	rm -rf $(BUILD) $(ASAN)
