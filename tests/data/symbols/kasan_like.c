/*
 * A tiny stand-in for kernel code, compiled by tests/test_symbols.py into an ELF with
 * `gcc -g -O1` (and a relocatable ".ko" with -c) to test kinspect's symbolizer against
 * `addr2line -f -i`.  Written for kinspect; it has static inline helpers that gcc inlines
 * (so addresses have inlined frames), a noinline chain (frames with offsets), a loop and a
 * few functions with the same shape as KASAN KUnit cases.
 */
#include <stddef.h>

volatile unsigned char sink_byte;
volatile long sink_long;

static inline __attribute__((always_inline)) size_t kasan_granule_round(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static inline __attribute__((always_inline)) void poison_byte(unsigned char *p, size_t i)
{
	p[i] = 0xfc;
	sink_byte = p[i];
}

static inline __attribute__((always_inline)) void poison_redzone(unsigned char *p, size_t size,
								   size_t slot)
{
	for (size_t i = kasan_granule_round(size); i < slot; i++)
		poison_byte(p, i);
}

__attribute__((noinline)) long kmalloc_oob_right(unsigned char *obj, size_t size)
{
	poison_redzone(obj, size, 128);
	obj[size] = 'x';
	return obj[size + 5];
}

__attribute__((noinline)) long kmalloc_uaf(unsigned char *obj)
{
	long v = 0;
	for (int i = 0; i < 16; i++)
		v += obj[i] * (i + 1);
	sink_long = v;
	return v;
}

static __attribute__((noinline)) long kasan_stack_helper(int n)
{
	volatile char stack_array[10];
	for (int i = 0; i < n; i++)
		stack_array[i % 10] = (char)i;
	return stack_array[3];
}

__attribute__((noinline)) long kasan_stack_oob(int n)
{
	return kasan_stack_helper(n) + kasan_stack_helper(n + 1);
}

long run_all(unsigned char *buf)
{
	return kmalloc_oob_right(buf, 115) + kmalloc_uaf(buf) + kasan_stack_oob(12);
}

int main(int argc, char **argv)
{
	static unsigned char buf[256];
	(void)argv;
	return (int)run_all(buf) + argc;
}
