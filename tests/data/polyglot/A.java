/** Doc for A. */
public class A {
    public static final int MAX = 3;
    private int count;
    /** Does it. */
    public void doIt(int x) { }
    public A() {}
    interface I { void run(); }
    enum Color { RED }
}
