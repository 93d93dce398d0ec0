# stocks_stream — PGXS build of the extension.
EXTENSION = stocks_stream
MODULE_big = stocks_stream
EXTVERSION = 0.1.0

OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
DATA = sql/stocks_stream--$(EXTVERSION).sql

REGRESS = pipeline_api source_api loader gold api settings
REGRESS_OPTS = --load-extension=stocks_stream

LIBS_PC = libcurl json-c zlib libwebsockets

# librdkafka: scripts/stack builds a newer one than Debian 12 ships (see
# README, "Why librdkafka 2.8") and passes RDKAFKA_PREFIX; it is linked
# statically, its symbols kept private, so the system librdkafka is never
# picked up at run time.  Without RDKAFKA_PREFIX the system one is used.
ifdef RDKAFKA_PREFIX
RDKAFKA_PC = PKG_CONFIG_PATH=$(RDKAFKA_PREFIX)/lib/pkgconfig pkg-config
RDKAFKA_DEPS = $(shell $(RDKAFKA_PC) --print-requires-private rdkafka)
RDKAFKA_CFLAGS = -isystem $(RDKAFKA_PREFIX)/include
RDKAFKA_LIBS = $(RDKAFKA_PREFIX)/lib/librdkafka.a -Wl,--exclude-libs,librdkafka.a \
	$(shell pkg-config --libs $(RDKAFKA_DEPS)) -lm -ldl -lpthread -lrt
else
RDKAFKA_CFLAGS = $(shell pkg-config --cflags rdkafka)
RDKAFKA_LIBS = $(shell pkg-config --libs rdkafka)
endif

PG_CPPFLAGS = -Isrc $(RDKAFKA_CFLAGS) $(shell pkg-config --cflags $(LIBS_PC)) -Wall -Wextra -Wno-unused-parameter
SHLIB_LINK = $(RDKAFKA_LIBS) $(shell pkg-config --libs $(LIBS_PC))

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
