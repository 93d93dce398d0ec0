# fuzz/fuzz.mk: libFuzzer targets for every parser of outside bytes
# (fuzz/README.md).  Included from the top-level Makefile, after PGXS, so
# the extension's include paths and libraries are at hand.
#
#   make fuzz                  build every target, run each for FUZZ_SECONDS
#                              (default 30) from its seed corpus; fails if
#                              any target crashes
#   make fuzz-build            build only
#   make fuzz FUZZ_TARGETS=object_key FUZZ_SECONDS=600
#
# Each target is the real src/<layer>/*.c files it names below plus fuzz/harness.c
# (palloc, ereport, StringInfo over malloc and longjmp), built with
# clang-16 -fsanitize=fuzzer,address,undefined.  Everything built or grown
# goes to fuzz/build/ (git-ignored); the seeds stay as committed.

FUZZ_CC ?= clang-16
FUZZ_SECONDS ?= 30
FUZZ_BUILD = fuzz/build

FUZZ_TARGETS ?= bronze_line object_key s3_list_page gzip secrets kafka_properties finnhub_ws \
	finnhub_quote $(if $(PARQUET_FFI_PREFIX),parquet)

# the src files each target compiles (beside fuzz/<target>_fuzz.c)
FUZZ_SRCS_bronze_line = src/load/bronze_record.c src/load/flat_json.c src/core/settings.c src/core/symbol.c
FUZZ_SRCS_object_key = src/archive/object_key.c src/core/symbol.c
FUZZ_SRCS_s3_list_page = src/s3/s3_list_page.c
FUZZ_SRCS_gzip = src/load/bronze_gzip.c
FUZZ_SRCS_secrets = src/core/secrets.c src/core/settings.c
FUZZ_SRCS_kafka_properties = src/kafka/kafka.c src/core/secrets.c src/core/settings.c
FUZZ_SRCS_finnhub_ws = src/ingest/finnhub_messages.c $(FUZZ_SRCS_bronze_line)
FUZZ_SRCS_finnhub_quote = src/ingest/finnhub_messages.c $(FUZZ_SRCS_bronze_line)
# (with PARQUET_FFI_PREFIX: the library is linked as the extension links it, uninstrumented)
FUZZ_SRCS_parquet = src/load/bronze_parquet.c src/lake/parquet_object.c src/core/settings.c

# libFuzzer's -max_len where its default (4 KB, or the largest seed) is too
# small to reach a parser's own limit
FUZZ_MAX_LEN_bronze_line = 70000

FUZZ_SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined
# -fwrapv and -fno-strict-aliasing as PostgreSQL builds the extension;
# -Wno-ignored-attributes: clang does not know the headers' gnu_printf
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer -fwrapv -fno-strict-aliasing \
	-Wall -Wextra -Wno-unused-parameter -Wno-ignored-attributes -Wno-missing-field-initializers
FUZZ_CPPFLAGS = -Isrc -Ifuzz -I$(includedir_server) -I$(includedir_internal) -D_GNU_SOURCE \
	$(RDKAFKA_CFLAGS) $(PARQUET_FFI_CFLAGS) $(shell pkg-config --cflags $(LIBS_PC))
# psprintf, the UTF-8 verifier and PostgreSQL's snprintf, built for frontends
FUZZ_PGLIBS = $(pkglibdir)/libpgcommon_shlib.a $(pkglibdir)/libpgport_shlib.a
FUZZ_LIBS = $(FUZZ_PGLIBS) $(SHLIB_LINK) -lm

FUZZ_HARNESS = $(FUZZ_BUILD)/harness.o $(FUZZ_BUILD)/unreachable.o
FUZZ_BINS = $(foreach t,$(FUZZ_TARGETS),$(FUZZ_BUILD)/$(t)_fuzz)

# the harness is not instrumented for coverage: libFuzzer steers by the parsers' edges
$(FUZZ_BUILD)/%.o: fuzz/%.c fuzz/harness.h
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SANITIZE) $(FUZZ_CPPFLAGS) -c $< -o $@

.SECONDEXPANSION:
$(FUZZ_BUILD)/%_fuzz: fuzz/%_fuzz.c $$(FUZZ_SRCS_$$*) $(FUZZ_HARNESS) $$(wildcard src/*/*.h) fuzz/harness.h
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SANITIZE) -fsanitize=fuzzer $(FUZZ_CPPFLAGS) \
		fuzz/$*_fuzz.c $(FUZZ_SRCS_$*) $(FUZZ_HARNESS) $(FUZZ_LIBS) -o $@

ifdef PARQUET_FFI_PREFIX
$(FUZZ_BUILD)/parquet_fuzz: $(PARQUET_FFI_PREFIX)/lib/ss_parquet_ffi.o
endif

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@FUZZ_BUILD='$(FUZZ_BUILD)' FUZZ_SECONDS='$(FUZZ_SECONDS)' \
		$(foreach t,$(FUZZ_TARGETS),FUZZ_MAX_LEN_$(t)='$(FUZZ_MAX_LEN_$(t))') \
		fuzz/run $(FUZZ_TARGETS)

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

.PHONY: fuzz fuzz-build fuzz-clean
