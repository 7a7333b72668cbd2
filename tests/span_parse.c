/* Unit tests of the span's configuration parsing (pure functions). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "core/span.h"

static uint64_t num(const char *s)
{
	uint64_t v = 0xdead;
	cr_assert_eq(sk_span_parse_num(s, &v), 0, "parse %s", s);
	return v;
}

Test(span_parse, numbers)
{
	cr_expect_eq(num("4096"), 4096);
	cr_expect_eq(num("0x1000"), 4096);
	cr_expect_eq(num("0X1000"), 4096);
	cr_expect_eq(num("64G"), 64ull << 30);
	cr_expect_eq(num("64g"), 64ull << 30);
	cr_expect_eq(num("1t"), 1ull << 40);
	cr_expect_eq(num("0x10K"), 16ull << 10);
	cr_expect_eq(num("3M"), 3ull << 20);
	cr_expect_eq(num("0"), 0);
}

Test(span_parse, bad_numbers)
{
	uint64_t v = 7;
	const char *bad[] = { "", "0x", "12Q", "12KB", "K", "-1", " 1", "1 ",
			      "0xfffffffffffffffff", "99999999999999999999",
			      "17179869184T", "0x1g0" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_expect_eq(sk_span_parse_num(bad[i], &v), -EINVAL, "'%s' accepted", bad[i]);
	cr_expect_eq(sk_span_parse_num(NULL, &v), -EINVAL);
	cr_expect_eq(v, 7, "untouched on error");
}

Test(span_parse, spans)
{
	struct sk_span_cfg c = { .policy = SK_SPAN_STRICT };
	cr_assert_eq(sk_span_parse(NULL, &c), 0);
	cr_expect_eq(c.addr, SK_SPAN_DEFAULT_ADDR);
	cr_expect_eq(c.size, SK_SPAN_DEFAULT_SIZE);
	cr_expect(!c.off);
	cr_expect_eq(c.policy, SK_SPAN_STRICT, "policy left alone");
	cr_assert_eq(sk_span_parse("", &c), 0);
	cr_expect_eq(c.addr, SK_SPAN_DEFAULT_ADDR);
	cr_assert_eq(sk_span_parse("off", &c), 0);
	cr_expect(c.off);
	cr_assert_eq(sk_span_parse("0x500000000000:16G", &c), 0);
	cr_expect_eq(c.addr, 0x500000000000ull);
	cr_expect_eq(c.size, 16ull << 30);
	cr_expect(!c.off);
	cr_assert_eq(sk_span_parse("1T:1M", &c), 0);
	cr_expect_eq(c.addr, 1ull << 40);
	cr_expect_eq(c.size, 1ull << 20);
	/* Sizes are rounded up to SHMLBA (a page here). */
	cr_assert_eq(sk_span_parse("0x100000000:5000", &c), 0);
	cr_expect_eq(c.size, 8192);
}

Test(span_parse, bad_spans)
{
	struct sk_span_cfg c = { .addr = 1, .size = 2 };
	const char *bad[] = { "on", "0x1000", ":4K", "0x1000:", "0x1001:4K",
			      "0:4K", "0x1000:0", "0x1000:4K:1", "0x1000:junk",
			      "0x100000000000000:1T", "0x1000:0x200000000000000",
			      "OFF", "0x1000 : 4K" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_expect_eq(sk_span_parse(bad[i], &c), -EINVAL, "'%s' accepted", bad[i]);
	cr_expect(c.addr == 1 && c.size == 2, "untouched on error");
}

Test(span_parse, policy)
{
	enum sk_span_policy p = SK_SPAN_STRICT;
	cr_expect_eq(sk_span_parse_policy(NULL, &p), 0);
	cr_expect_eq(p, SK_SPAN_WARN);
	cr_expect_eq(sk_span_parse_policy("strict", &p), 0);
	cr_expect_eq(p, SK_SPAN_STRICT);
	cr_expect_eq(sk_span_parse_policy("", &p), 0);
	cr_expect_eq(p, SK_SPAN_WARN);
	cr_expect_eq(sk_span_parse_policy("warn", &p), 0);
	cr_expect_eq(sk_span_parse_policy("Strict", &p), -EINVAL);
	cr_expect_eq(sk_span_parse_policy("fatal", &p), -EINVAL);
	cr_expect_eq(p, SK_SPAN_WARN);
}

Test(span_parse, environment)
{
	struct sk_span_cfg c;
	setenv("SHMKEEPER_SPAN", "0x600000000000:2G", 1);
	setenv("SHMKEEPER_SPAN_POLICY", "strict", 1);
	cr_expect_eq(sk_span_config_env(&c), 0);
	cr_expect_eq(c.addr, 0x600000000000ull);
	cr_expect_eq(c.size, 2ull << 30);
	cr_expect_eq(c.policy, SK_SPAN_STRICT);
	setenv("SHMKEEPER_SPAN", "garbage", 1);
	unsetenv("SHMKEEPER_SPAN_POLICY");
	cr_expect_eq(sk_span_config_env(&c), -EINVAL);
	cr_expect_eq(c.addr, SK_SPAN_DEFAULT_ADDR, "falls back to the default");
	cr_expect_eq(c.policy, SK_SPAN_WARN);
	unsetenv("SHMKEEPER_SPAN");
}

Test(span_parse, strict_errno)
{
	cr_expect_eq(sk_span_strict_errno(SK_SPAN_SYSV, 0), EINVAL);
	cr_expect_eq(sk_span_strict_errno(SK_SPAN_POSIX, MAP_SHARED), ENOMEM);
	cr_expect_eq(sk_span_strict_errno(SK_SPAN_POSIX, MAP_SHARED | MAP_FIXED_NOREPLACE), EEXIST);
}

Test(span_parse, table_name)
{
	struct sk_span_cfg c = { .addr = 0x400000000000ull, .size = 64ull << 30 };
	char buf[128];
	int n = sk_span_table_name(&c, buf, sizeof buf);
	cr_assert_gt(n, 0);
	cr_expect_eq(strncmp(buf, SK_SPAN_TABLE_PREFIX, strlen(SK_SPAN_TABLE_PREFIX)), 0);
	cr_expect_neq(strstr(buf, ".400000000000.1000000000"), NULL, "%s", buf);
	cr_expect_eq(sk_span_table_name(&c, buf, 10), -ENAMETOOLONG);
}
