/* Only .text functions: no program. */
__attribute__((noinline)) int helper_only(int x)
{
	return x + 1;
}
