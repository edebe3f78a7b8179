// qyolo command-line entry point (subcommands are added in tools/cmd_*.cpp).
#include <cstdio>
int main() {
  std::puts("qyolo: skeleton");
  return 0;
}
