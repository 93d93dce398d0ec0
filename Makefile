# stocks_stream — PGXS build of the extension.
EXTENSION = stocks_stream
MODULE_big = stocks_stream
EXTVERSION = 0.1.0

OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
DATA = sql/stocks_stream--$(EXTVERSION).sql

REGRESS = pipeline_api source_api loader gold api settings
REGRESS_OPTS = --load-extension=stocks_stream

PG_CPPFLAGS = -Isrc $(shell pkg-config --cflags rdkafka libcurl json-c zlib libwebsockets) -Wall -Wextra -Wno-unused-parameter
SHLIB_LINK = $(shell pkg-config --libs rdkafka libcurl json-c zlib libwebsockets)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
