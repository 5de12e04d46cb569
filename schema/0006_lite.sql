-- Tables and columns for WhatsApp Lite sessions (issue 6).

SELECT 1;
