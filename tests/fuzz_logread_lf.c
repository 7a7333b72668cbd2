/* fuzz_logread_lf - libFuzzer target for the log reader (core/logread.c).
 * Built with configure --enable-fuzz and CC=clang; .ci/run-sanitizers fuzz
 * runs it over tests/corpus/log. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/logread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sk_reader *r = NULL;
	if (sk_reader_open_mem(&r, data, size) < 0) {
		sk_reader_close(r);
		return 0;
	}
	const struct sk_file_header *h = sk_reader_header(r);
	for (const char *a = sk_args_next(h, NULL); a; a = sk_args_next(h, a))
		sink += strlen(a);
	struct sk_event ev;
	int rc;
	size_t steps = 0;
	while ((rc = sk_reader_next(r, &ev)) != SK_RD_END && rc >= 0 && steps++ < size / 8 + 16) {
		if (rc != SK_RD_EVENT)
			continue;
		const uint8_t *rec = (const uint8_t *)ev.rec;
		for (uint32_t i = 0; i < ev.len; i++)
			sink += rec[i];
		if (ev.name)
			sink += strlen(ev.name) + ev.name_len;
		for (unsigned i = 0; i < ev.nframes; i++)
			sink += ev.frames[i];
		for (unsigned i = 0; i < ev.build_id_len; i++)
			sink += ev.build_id[i];
	}
	sk_reader_close(r);
	return 0;
}
