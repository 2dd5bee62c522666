namespace ns {
class Widget {
 public:
  void draw();
  int size() { return 1; }
};
}
void ns::Widget::draw() {}
